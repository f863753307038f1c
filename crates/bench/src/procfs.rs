//! More `/proc` readings for the catalog benchmark: TCP socket queues and per-thread CPU time.
//!
//! - `/proc/net/tcp` tells when a server has *read* every watcher's request: a server-side socket
//!   whose receive queue is empty holds no unread request bytes. The table is per network
//!   namespace, which the benchmark shares with the servers it starts.
//! - `/proc/<pid>/task/<tid>/schedstat` gives each thread's time on a CPU in nanoseconds, finer
//!   than the clock ticks of `/proc/<pid>/stat` (10 ms at `CLK_TCK` 100), which is too coarse
//!   for a fan-out to a thousand watchers that costs a few milliseconds.
//!
//! Parsing is separate from reading so it is tested without sockets or processes.

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{anyhow, Context as _};

/// The `st` value of an established socket in `/proc/net/tcp` (`TCP_ESTABLISHED`).
const TCP_ESTABLISHED: u8 = 0x01;

/// One row of `/proc/net/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRow {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub state: u8,
    pub tx_queue: u64,
    pub rx_queue: u64,
}

/// An address of `/proc/net/tcp`: the IPv4 address as the kernel's 32-bit word in host
/// (little-endian) order, then the port, both in hex: `0100007F:1F90` is 127.0.0.1:8080.
fn parse_addr(text: &str) -> Option<SocketAddrV4> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_le_bytes()), port))
}

/// One data line of `/proc/net/tcp` (`None` for the header line or anything malformed).
///
/// `  sl  local_address rem_address   st tx_queue:rx_queue tr tm->when retrnsmt ...`
pub fn parse_tcp_row(line: &str) -> Option<TcpRow> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?.strip_suffix(':')?;
    let local = parse_addr(fields.next()?)?;
    let remote = parse_addr(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let (tx, rx) = fields.next()?.split_once(':')?;
    Some(TcpRow {
        local,
        remote,
        state,
        tx_queue: u64::from_str_radix(tx, 16).ok()?,
        rx_queue: u64::from_str_radix(rx, 16).ok()?,
    })
}

/// The server side of the connections from a set of client addresses to one listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerSide {
    /// Established server-side sockets (accepted or still in the accept queue).
    pub established: usize,
    /// Those of them whose receive queue still holds bytes the server has not read.
    pub unread: usize,
}

/// Counts, in the text of `/proc/net/tcp`, the established sockets whose local end is `server`
/// and whose remote end's address satisfies `from`.
pub fn server_side(
    table: &str,
    server: SocketAddrV4,
    from: impl Fn(Ipv4Addr) -> bool,
) -> ServerSide {
    table
        .lines()
        .filter_map(parse_tcp_row)
        .filter(|r| r.state == TCP_ESTABLISHED && r.local == server && from(*r.remote.ip()))
        .fold(ServerSide::default(), |acc, r| ServerSide {
            established: acc.established + 1,
            unread: acc.unread + usize::from(r.rx_queue > 0),
        })
}

/// The `st` value of a listening socket (`TCP_LISTEN`).
const TCP_LISTEN: u8 = 0x0A;

/// The accept queue length of the listener on `server`: for a listening socket the kernel
/// reports the connections waiting for `accept` as its `rx_queue`. `None` when no socket
/// listens there.
pub fn accept_queue(table: &str, server: SocketAddrV4) -> Option<u64> {
    table
        .lines()
        .filter_map(parse_tcp_row)
        .find(|r| r.state == TCP_LISTEN && r.local == server)
        .map(|r| r.rx_queue)
}

/// [`accept_queue`] of this network namespace's `/proc/net/tcp`.
pub fn read_accept_queue(server: SocketAddrV4) -> anyhow::Result<Option<u64>> {
    let table = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
    Ok(accept_queue(&table, server))
}

/// [`server_side`] of this network namespace's `/proc/net/tcp`.
pub fn read_server_side(
    server: SocketAddrV4,
    from: impl Fn(Ipv4Addr) -> bool,
) -> anyhow::Result<ServerSide> {
    let table = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
    Ok(server_side(&table, server, from))
}

/// The time on a CPU of every live thread of a process, in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCpu {
    /// Sum over the threads listed in `tids`.
    pub total_ns: u64,
    /// The threads read, ascending.
    pub tids: Vec<u32>,
}

/// The first field of `/proc/<pid>/task/<tid>/schedstat`: time spent on a CPU, in ns.
pub fn parse_schedstat_ns(text: &str) -> anyhow::Result<u64> {
    let first = text
        .split_whitespace()
        .next()
        .ok_or_else(|| anyhow!("empty schedstat"))?;
    first
        .parse()
        .with_context(|| format!("schedstat run time {first:?} is not a number"))
}

/// Reads every thread's `schedstat`. A thread that exits while being read is left out (and
/// then [`cpu_ns_between`] falls back to clock ticks).
pub fn thread_cpu(pid: u32) -> anyhow::Result<ThreadCpu> {
    let dir = format!("/proc/{pid}/task");
    let mut tids: Vec<u32> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {dir}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    let mut total_ns = 0;
    let mut read = Vec::with_capacity(tids.len());
    for tid in tids {
        let Ok(text) = std::fs::read_to_string(format!("{dir}/{tid}/schedstat")) else {
            continue;
        };
        total_ns += parse_schedstat_ns(&text).with_context(|| format!("{dir}/{tid}/schedstat"))?;
        read.push(tid);
    }
    Ok(ThreadCpu {
        total_ns,
        tids: read,
    })
}

/// CPU nanoseconds between two readings, when every thread of `before` is still there in
/// `after` (a thread that exited took its time with it); `None` otherwise. Threads that appear
/// in between count whole: all their time lies inside the window.
pub fn cpu_ns_between(before: &ThreadCpu, after: &ThreadCpu) -> Option<u64> {
    before
        .tids
        .iter()
        .all(|t| after.tids.binary_search(t).is_ok())
        .then(|| after.total_ns.saturating_sub(before.total_ns))
}

/// A CPU reading of a process: per-thread ns when readable, and clock ticks as a fallback.
#[derive(Debug, Clone)]
pub struct CpuMark {
    threads: Option<ThreadCpu>,
    ticks: u64,
}

impl CpuMark {
    pub fn read(pid: u32) -> anyhow::Result<Self> {
        Ok(CpuMark {
            threads: thread_cpu(pid).ok(),
            ticks: crate::proc::sample(pid)?.cpu_ticks,
        })
    }

    /// CPU nanoseconds from `self` to `later`: per-thread `schedstat` when no thread exited in
    /// between, else clock ticks (utime + stime); and which of the two it was.
    pub fn ns_until(&self, later: &CpuMark, ticks_per_sec: u64) -> (u64, &'static str) {
        if let (Some(a), Some(b)) = (&self.threads, &later.threads) {
            if let Some(ns) = cpu_ns_between(a, b) {
                return (ns, "schedstat");
            }
        }
        let ticks = later.ticks.saturating_sub(self.ticks);
        (ticks * 1_000_000_000 / ticks_per_sec.max(1), "ticks")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 6400007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 0100007F:1F90 6500007F:9C41 01 00000000:00000055 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   3: 6400007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0 20 4 30 10 -1
   4: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0 20 4 30 10 -1
   5: 0100007F:1F90 6600007F:9C42 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0
";

    #[test]
    fn rows_decode_little_endian_addresses_and_hex_queues() {
        let row = TABLE.lines().nth(3).and_then(parse_tcp_row).expect("row 2");
        assert_eq!(row.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(row.remote, "127.0.0.101:40001".parse().unwrap());
        assert_eq!(row.state, 1);
        assert_eq!((row.tx_queue, row.rx_queue), (0, 0x55));
        assert_eq!(parse_tcp_row(TABLE.lines().next().unwrap()), None);
    }

    #[test]
    fn server_side_counts_only_established_sockets_from_the_watchers() {
        let server = "127.0.0.1:8080".parse().unwrap();
        // 127.0.0.100 and .101 are watchers; .1 (another client) and the listener are not,
        // nor the client ends (local .100) nor the TIME_WAIT socket (st 06) from .102.
        let watchers = |ip: Ipv4Addr| ip.octets()[3] >= 100;
        assert_eq!(
            server_side(TABLE, server, watchers),
            ServerSide {
                established: 2,
                unread: 1
            }
        );
        let other = "127.0.0.1:8081".parse().unwrap();
        assert_eq!(server_side(TABLE, other, watchers), ServerSide::default());
    }

    #[test]
    fn accept_queue_is_the_listeners_rx_queue() {
        let server = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(accept_queue(TABLE, server), Some(0));
        let full = TABLE.replacen("0A 00000000:00000000", "0A 00000000:00000081", 1);
        assert_eq!(accept_queue(&full, server), Some(129));
        assert_eq!(accept_queue(TABLE, "127.0.0.1:9".parse().unwrap()), None);
    }

    #[test]
    fn schedstat_and_windows_that_lost_a_thread() {
        assert_eq!(parse_schedstat_ns("706730 0 1\n").unwrap(), 706_730);
        assert!(parse_schedstat_ns("").is_err());
        let before = ThreadCpu {
            total_ns: 100,
            tids: vec![1, 2],
        };
        let grew = ThreadCpu {
            total_ns: 180,
            tids: vec![1, 2, 3],
        };
        let lost = ThreadCpu {
            total_ns: 180,
            tids: vec![1, 3],
        };
        assert_eq!(cpu_ns_between(&before, &grew), Some(80));
        assert_eq!(cpu_ns_between(&before, &lost), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let cpu = thread_cpu(me).expect("own schedstat");
        assert!(cpu.tids.contains(&me));
    }
}
