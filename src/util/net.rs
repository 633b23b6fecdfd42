//! Host names: the host of a `host:port` authority, and whether a host is this machine's loopback.
//! The dashboard checks a request's `Host` with them (against DNS rebinding) and the remote cache an
//! endpoint (plain HTTP only to this machine).

/// `name` of `name:port`, `[::1]` of `[::1]:port` (the authority unchanged when it has no port).
pub fn host_of(authority: &str) -> &str {
    match authority.rfind(']') {
        Some(end) => &authority[..=end],
        None => authority.split(':').next().unwrap_or(authority),
    }
}

/// Whether `host` (without a port) names this machine's loopback: `localhost`, `[::1]` or an IPv4
/// address in 127.0.0.0/8.
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_of("localhost:8321"), "localhost");
        assert_eq!(host_of("[::1]:8321"), "[::1]");
        assert_eq!(host_of("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn only_this_machine_is_loopback() {
        for host in ["localhost", "[::1]", "127.0.0.1", "127.3.2.1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "attacker.example",
            "127.0.0.1.example.org",
            "10.0.0.1",
            "::1x",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
