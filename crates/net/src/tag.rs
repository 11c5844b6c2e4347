//! Datagram authentication: an HMAC-SHA256 tag, truncated to [`TAG_LEN`] bytes,
//! appended to every datagram keel sends.
//!
//! Owns: sealing and opening datagrams. The context string separates protocols (link
//! datagrams and multicast announcements), so a datagram of one is never valid as the
//! other.
//!
//! Must never: compare tags in variable time, or hand out a payload whose tag failed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of tag appended to every authenticated datagram.
pub const TAG_LEN: usize = 16;

/// Context of datagrams sent on links ([`crate::UdpLinks`]).
pub(crate) const LINK_CONTEXT: &[u8] = b"keel/udp-link/v1";
/// Context of multicast announcements ([`crate::MulticastAnnouncer`]).
pub(crate) const ANNOUNCE_CONTEXT: &[u8] = b"keel/multicast-announce/v1";

fn mac(key: &[u8; 32], context: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC accepts 32-byte keys");
    mac.update(&(context.len() as u32).to_be_bytes());
    mac.update(context);
    mac.update(payload);
    mac
}

/// `payload` followed by its tag.
pub(crate) fn seal(key: &[u8; 32], context: &[u8], payload: &[u8]) -> Vec<u8> {
    let tag = mac(key, context, payload).finalize().into_bytes();
    let mut datagram = Vec::with_capacity(payload.len() + TAG_LEN);
    datagram.extend_from_slice(payload);
    datagram.extend_from_slice(&tag[..TAG_LEN]);
    datagram
}

/// The payload of `datagram` if its tag is right.
pub(crate) fn open<'a>(key: &[u8; 32], context: &[u8], datagram: &'a [u8]) -> Option<&'a [u8]> {
    let split = datagram.len().checked_sub(TAG_LEN)?;
    let (payload, tag) = datagram.split_at(split);
    mac(key, context, payload)
        .verify_truncated_left(tag)
        .ok()
        .map(|()| payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_opens_and_tampered_does_not() {
        let key = [7u8; 32];
        let sealed = seal(&key, LINK_CONTEXT, b"hello");
        assert_eq!(open(&key, LINK_CONTEXT, &sealed), Some(&b"hello"[..]));
        assert_eq!(open(&[8u8; 32], LINK_CONTEXT, &sealed), None);
        assert_eq!(open(&key, ANNOUNCE_CONTEXT, &sealed), None);
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert_eq!(open(&key, LINK_CONTEXT, &tampered), None);
        assert_eq!(open(&key, LINK_CONTEXT, &sealed[..TAG_LEN - 1]), None);
    }
}
