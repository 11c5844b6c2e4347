//! The idempotency-token memory: the replies of the last [`TOKEN_MEMORY`]
//! token-carrying commands, so that a retried write is applied once.
//!
//! Owns: remembering, forgetting the oldest (by a sequence number, deterministic) and
//! the snapshot form. Must never: depend on anything but the commands applied (no
//! clock-based expiry: replicas must forget the same tokens at the same command).

use crate::DirResult;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// How many token-carrying commands the namespace remembers; the oldest is forgotten
/// first. A retry that arrives after this many other token-carrying commands is
/// applied again.
pub const TOKEN_MEMORY: usize = 10_000;

/// A remembered reply. `seq` orders the memory (the smallest is forgotten first).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Remembered {
    pub seq: u64,
    pub response: DirResult,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TokenMemory {
    next_seq: u64,
    by_token: BTreeMap<u128, Remembered>,
    /// Derived from `by_token`: which token holds each sequence number.
    by_seq: BTreeMap<u64, u128>,
}

impl TokenMemory {
    pub fn from_parts(
        next_seq: u64,
        remembered: impl IntoIterator<Item = (u128, Remembered)>,
    ) -> Self {
        let mut memory = TokenMemory {
            next_seq,
            ..TokenMemory::default()
        };
        for (token, r) in remembered {
            memory.by_seq.insert(r.seq, token);
            memory.by_token.insert(token, r);
        }
        memory
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn get(&self, token: u128) -> Option<&Remembered> {
        self.by_token.get(&token)
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u128, &Remembered)> {
        self.by_token.iter().map(|(t, r)| (*t, r))
    }

    /// Remembers `response` for `token` (which must not be remembered yet); returns
    /// the token forgotten to make room, if any.
    pub fn remember(&mut self, token: u128, response: DirResult) -> Option<u128> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_seq.insert(seq, token);
        self.by_token.insert(token, Remembered { seq, response });
        if self.by_token.len() <= TOKEN_MEMORY {
            return None;
        }
        let (_, oldest) = self.by_seq.pop_first()?;
        self.by_token.remove(&oldest);
        Some(oldest)
    }

    /// Checks that the two indexes agree; for [`crate::Namespace::check_invariants`].
    pub fn check(&self) -> Result<(), String> {
        if self.by_token.len() > TOKEN_MEMORY || self.by_seq.len() != self.by_token.len() {
            return Err(format!(
                "token memory holds {} tokens and {} sequence numbers",
                self.by_token.len(),
                self.by_seq.len()
            ));
        }
        for (token, r) in &self.by_token {
            if self.by_seq.get(&r.seq) != Some(token) || r.seq >= self.next_seq {
                return Err(format!(
                    "token {token:x} has a bad sequence number {}",
                    r.seq
                ));
            }
        }
        Ok(())
    }
}

/// A token on the wire: 32 hex digits. serde cannot buffer a `u128` (which it must do
/// inside internally tagged enums such as [`crate::DirCommand`]), and JSON maps cannot
/// have 128-bit keys, so tokens travel as strings.
#[derive(Clone, Copy)]
struct HexToken(u128);

impl Serialize for HexToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:032x}", self.0))
    }
}

impl<'de> Deserialize<'de> for HexToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HexToken, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 32 {
            return Err(serde::de::Error::custom(format!(
                "a token is 1 to 32 hex digits, not {s:?}"
            )));
        }
        u128::from_str_radix(&s, 16).map(HexToken).map_err(|_| {
            serde::de::Error::custom(format!("a token is 1 to 32 hex digits, not {s:?}"))
        })
    }
}

/// `#[serde(with)]` for a command's `Option<u128>` token: hex, as [`HexToken`].
pub(crate) mod optional_token {
    use super::HexToken;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(token: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
        token.map(HexToken).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
        Ok(Option::<HexToken>::deserialize(d)?.map(|t| t.0))
    }
}

/// The snapshot form: the next sequence number and the remembered replies as a list.
#[derive(Serialize)]
struct TokenListRef<'a> {
    next_seq: u64,
    remembered: Vec<(HexToken, &'a Remembered)>,
}

#[derive(Deserialize)]
struct TokenList {
    next_seq: u64,
    remembered: Vec<(HexToken, Remembered)>,
}

impl Serialize for TokenMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TokenListRef {
            next_seq: self.next_seq,
            remembered: self
                .by_token
                .iter()
                .map(|(t, r)| (HexToken(*t), r))
                .collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TokenMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TokenMemory, D::Error> {
        let list = TokenList::deserialize(d)?;
        let remembered = list.remembered.into_iter().map(|(t, r)| (t.0, r));
        Ok(TokenMemory::from_parts(list.next_seq, remembered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DirReply;

    #[test]
    fn the_oldest_is_forgotten_first() {
        let mut memory = TokenMemory::default();
        for token in 0..TOKEN_MEMORY as u128 {
            assert_eq!(memory.remember(token, Ok(DirReply::Done)), None);
        }
        assert_eq!(memory.remember(u128::MAX, Ok(DirReply::Done)), Some(0));
        assert_eq!(memory.remember(7 << 100, Ok(DirReply::Done)), Some(1));
        assert!(memory.get(0).is_none() && memory.get(2).is_some());
        assert_eq!(memory.get(u128::MAX).unwrap().seq, TOKEN_MEMORY as u64);
        assert_eq!(memory.len(), TOKEN_MEMORY);
        memory.check().unwrap();
    }
}
