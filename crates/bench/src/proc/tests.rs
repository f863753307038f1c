use super::*;

/// A real `/proc/self/stat` line shape with the given command name, utime 1234 and stime 567.
fn stat_line(comm: &str) -> String {
    format!(
        "4242 ({comm}) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 567 0 0 20 0 9 0 \
         100 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 4096 17663 0 0 0 17 1 0 0 0 0 0\n"
    )
}

#[test]
fn stat_plain_name() {
    assert_eq!(parse_stat_cpu_ticks(&stat_line("etcd")).unwrap(), 1801);
}

#[test]
fn stat_name_with_spaces_and_parentheses() {
    for comm in [
        "tokio-runtime-w",
        "a b c",
        "x) S 1 2 3 (",
        "((",
        "))",
        ") 9 9 9 9 9 9 9 9 9 9 9 9 9",
    ] {
        assert_eq!(
            parse_stat_cpu_ticks(&stat_line(comm)).unwrap(),
            1801,
            "comm {comm:?}"
        );
    }
}

#[test]
fn stat_truncated_or_garbled() {
    assert!(parse_stat_cpu_ticks("4242 (etcd S 1 2").is_err());
    assert!(parse_stat_cpu_ticks("4242 (etcd) S 1 2 3").is_err());
    let garbled = stat_line("etcd").replace(" 1234 ", " 12x4 ");
    assert!(parse_stat_cpu_ticks(&garbled).is_err());
}

#[test]
fn stat_of_this_process() {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    parse_stat_cpu_ticks(&stat).unwrap();
}

#[test]
fn vm_rss() {
    let status = "Name:\tetcd\nVmPeak:\t  99999 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n";
    assert_eq!(parse_vm_rss_kib(status).unwrap(), 51200);
    assert!(parse_vm_rss_kib("Name:\tzombie\nState:\tZ (zombie)\n").is_err());
    assert!(parse_vm_rss_kib("VmRSS:\t 12 MB\n").is_err());
}

#[test]
fn sample_of_this_process() {
    let s = sample(std::process::id()).unwrap();
    assert!(s.rss_kib > 0);
}
