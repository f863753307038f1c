# A service with a sidecar proxy: `web` on port 8080, calling `db` through its sidecar at
# 127.0.0.1:9191.
#
# Copy to /etc/mesh/client.d/web.hcl (0640 root:mesh) on the node that runs web, then
# `systemctl reload mesh-client` (or `mesh-client reload`) and
# `systemctl enable --now mesh-sidecar@web`. See docs/deploy.md.
#
# The agent registers two services from this block: `web`, and `web-sidecar-proxy` (kind
# connect-proxy) with the first free port of 21000-21255 as its public mTLS port, a TCP check
# on it, and an alias check of `web`.

service {
  name = "web"
  port = 8080

  # Without a passing check, web's instances still count; with a failing one they leave DNS
  # and `?passing` answers.
  check {
    name     = "web listening"
    tcp      = "127.0.0.1:8080"
    interval = "10s"
  }

  connect {
    sidecar_service {
      proxy {
        # web connects to 127.0.0.1:9191; the sidecar carries it over mTLS to a healthy db
        # instance's sidecar, which checks the intentions towards db.
        upstreams = [
          { destination_name = "db", local_bind_port = 9191 },
        ]
      }
    }
  }
}
