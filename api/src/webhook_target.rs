//! Where webhooks may point. A webhook makes the server send requests to a URL its client
//! chose; left open, that lets anyone with a key reach what only the server can (its own
//! loopback services, the private network, a cloud's metadata address at 169.254.169.254).
//! So unless the server allows private targets (`--webhook-private`, for receivers on the same
//! machine or network), a webhook must point at a public address: checked when the task is
//! submitted for addresses written in the URL, and again by the deliverer for every address a
//! host name resolves to at delivery time (a name may resolve elsewhere later), with
//! redirects not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is an address on the public internet: not loopback, unspecified, private
/// (RFC 1918, IPv6 unique local), link-local (incl. the metadata address), carrier-grade NAT
/// shared space, benchmarking, documentation, multicast, broadcast or reserved. IPv4-mapped
/// IPv6 addresses are judged as their IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT).
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24, IETF protocol assignments.
        || (a == 192 && b == 0 && c == 0)
        // 198.18.0.0/15, benchmarking.
        || (a == 198 && (b == 18 || b == 19))
        // 240.0.0.0/4, reserved.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7, unique local.
        || (first & 0xfe00) == 0xfc00
        // fe80::/10, link-local.
        || (first & 0xffc0) == 0xfe80
        // 2001:db8::/32, documentation.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // 64:ff9b:1::/48, local-use NAT64.
        || (first == 0x64 && ip.segments()[1] == 0xff9b && ip.segments()[2] == 1))
}

/// Why `url`'s host may not receive webhooks, or `None` when it may as far as can be told
/// before resolving it: an address written in the URL must be public, and `localhost` (and
/// names under it) never is. Other names are checked at delivery, address by address.
pub fn refusal(url: &url::Url) -> Option<String> {
    let why = match url.host()? {
        url::Host::Ipv4(v4) => (!is_public(v4.into())).then(|| v4.to_string()),
        url::Host::Ipv6(v6) => (!is_public(v6.into())).then(|| v6.to_string()),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            (d == "localhost" || d.ends_with(".localhost")).then_some(d)
        }
    }?;
    Some(format!(
        "webhook host {why} is not a public address; this server sends webhooks only to public \
         ones (its operator can allow private ones with --webhook-private)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "198.18.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "100.128.0.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_naming_private_hosts_are_refused_with_the_host() {
        let refused = |u: &str| refusal(&url::Url::parse(u).unwrap());
        assert!(refused("http://127.0.0.1:9/hook")
            .unwrap()
            .contains("127.0.0.1"));
        assert!(refused("http://[::1]/").unwrap().contains("::1"));
        assert!(refused("http://LocalHost./x")
            .unwrap()
            .contains("localhost"));
        assert!(refused("http://a.localhost/x").is_some());
        assert!(refused("http://169.254.169.254/latest/meta-data").is_some());
        assert_eq!(refused("https://hooks.example.com/x"), None);
        assert_eq!(refused("https://8.8.8.8/x"), None);
    }
}
