//! Typed identifiers. Swapping a `UserId` for a `LicenseId` is a compile error.

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        // Ordered and hashed as one 128-bit integer: the same order as the UUID's bytes (read
        // big-endian), in two word comparisons instead of a 16-byte `memcmp`; ids are the keys
        // of every ordered set a replay touches.
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.0.as_u128().cmp(&other.0.as_u128())
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                state.write_u128(self.0.as_u128());
            }
        }

        // The first byte of the order: the part of an `IdMap` the id lives in.
        impl crate::index::ShardKey for $name {
            fn shard(&self) -> u8 {
                (self.0.as_u128() >> 120) as u8
            }
        }

        impl $name {
            /// A fresh random id (only the shell calls this; `decide` derives ids instead).
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
            /// The raw UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }
    };
}

id_type!(
    /// A tenant: the "company" of the vendor documents.
    TenantId
);
id_type!(
    /// One licence instance (base or add-on).
    LicenseId
);
id_type!(
    /// A user of a tenant.
    UserId
);
id_type!(
    /// A group in a tenant's hierarchy.
    GroupId
);
id_type!(
    /// An API key of a tenant.
    KeyId
);
id_type!(
    /// The identity of one command, shared by every event it produced.
    CommandId
);
id_type!(
    /// A cart: changes previewed together, confirmed together.
    CartId
);

/// The code of a licence type in the catalogue, such as `phone_system` or `call_recording`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TypeCode(SmolStr);

/// Longest licence type code accepted.
pub const TYPE_CODE_BYTES_MAX: usize = 64;

impl TypeCode {
    /// A type code from text; `None` unless it is 1..=64 characters of `[a-z0-9_]`.
    pub fn parse(text: &str) -> Option<TypeCode> {
        let valid = !text.is_empty()
            && text.len() <= TYPE_CODE_BYTES_MAX
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        valid.then(|| TypeCode(SmolStr::new(text)))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TypeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TypeCode {
    fn from(text: &str) -> Self {
        TypeCode(SmolStr::new(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Listings page through ids in order: the id order is the UUID's byte order.
        #[test]
        fn ids_order_as_their_uuids_bytes(a in any::<[u8; 16]>(), b in any::<[u8; 16]>()) {
            let (x, y) = (LicenseId(Uuid::from_bytes(a)), LicenseId(Uuid::from_bytes(b)));
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            prop_assert_eq!(x.cmp(&y), x.0.cmp(&y.0));
        }
    }
}
