//! `trusted_proxies`: the reverse proxies whose `X-Forwarded-For` is believed
//! when telling one client from another. Addresses (`10.0.0.5`) or CIDRs
//! (`10.0.0.0/8`, `fd00::/8`), as a TOML array or comma-separated in
//! `LEADCHAT_TRUSTED_PROXIES`. Empty (the default) = the peer address is the
//! client, whatever headers say.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let entries = match Raw::deserialize(d)? {
        Raw::List(list) => list,
        Raw::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    let mut out = Vec::new();
    for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        parse(entry).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected an address or CIDR like `10.0.0.5` or `10.0.0.0/8`, got {entry:?}"
            ))
        })?;
        out.push(entry.to_owned());
    }
    Ok(out)
}

/// One entry as a network; a bare address is a network of one.
pub fn parse(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_addresses_and_cidrs() {
        let net = parse("10.0.0.0/8").expect("cidr");
        assert!(net.contains(&"10.1.2.3".parse::<IpAddr>().expect("ip")));
        let one = parse("192.168.1.7").expect("address");
        assert!(one.contains(&"192.168.1.7".parse::<IpAddr>().expect("ip")));
        assert!(!one.contains(&"192.168.1.8".parse::<IpAddr>().expect("ip")));
        assert!(parse("::1").is_some());
        assert!(parse("proxy.local").is_none());
    }
}
