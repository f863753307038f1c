//! Which protocol a listener speaks, from Consul's `protocol` values (a service-defaults or
//! proxy-defaults config entry, or the proxy registration's `Config.protocol`). `tcp` proxies
//! bytes; the others proxy HTTP requests, which is what L7 intentions, retries and
//! per-request balancing need.

use std::fmt;

#[cfg(test)]
mod tests;

/// A listener's protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Bytes both ways, authorized per connection.
    #[default]
    Tcp,
    /// HTTP/1.1 towards the application and between sidecars.
    Http,
    /// HTTP/2 (prior knowledge) towards the application and between sidecars.
    Http2,
    /// gRPC: HTTP/2 as far as the proxy is concerned.
    Grpc,
}

impl Protocol {
    /// Consul's values, in any case; empty (not configured) is `tcp`.
    pub fn parse(text: &str) -> Option<Protocol> {
        let known = [
            ("", Protocol::Tcp),
            ("tcp", Protocol::Tcp),
            ("http", Protocol::Http),
            ("http2", Protocol::Http2),
            ("grpc", Protocol::Grpc),
        ];
        known
            .into_iter()
            .find(|(name, _)| text.eq_ignore_ascii_case(name))
            .map(|(_, protocol)| protocol)
    }

    /// Consul's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
            Protocol::Http2 => "http2",
            Protocol::Grpc => "grpc",
        }
    }

    /// Whether requests, not connections, are the unit proxied.
    pub fn is_http(self) -> bool {
        self != Protocol::Tcp
    }

    /// Whether connections to the application and between sidecars use HTTP/2.
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
