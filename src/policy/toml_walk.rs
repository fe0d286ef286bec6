//! Typed, position-aware access to a parsed TOML table that reports problems instead of
//! stopping at the first one. Unknown fields are reported by [`Obj::check_fields`].

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;
use tron_proto::Address;

use super::amount::parse_amount;
use super::duration::parse_duration;
use super::problem::{ProblemCode, Problems};
use tron_proto::U256;

pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// A TOML table plus a description of it for messages ("[global]", "key T…").
pub(crate) struct Obj<'a, 'i> {
    pub(crate) table: &'a DeTable<'i>,
    pub(crate) span: Range<usize>,
    pub(crate) what: String,
}

/// A value with the byte span it came from.
pub(crate) struct At<T> {
    pub(crate) value: T,
    pub(crate) span: Range<usize>,
}

impl<'a, 'i> Obj<'a, 'i> {
    /// Views `value` as a table, reporting a type problem otherwise.
    pub(crate) fn from_value(
        p: &mut Problems<'_>,
        value: &'a Value<'i>,
        what: impl Into<String>,
    ) -> Option<Self> {
        let what = what.into();
        match value.get_ref() {
            DeValue::Table(table) => Some(Obj {
                table,
                span: value.span(),
                what,
            }),
            other => {
                p.at(
                    value.span(),
                    ProblemCode::WrongType,
                    format!("{what} must be a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// Reports every field not in `allowed`.
    pub(crate) fn check_fields(&self, p: &mut Problems<'_>, allowed: &[&str]) {
        for (k, _) in self.table.iter() {
            let name: &str = k.get_ref();
            if !allowed.contains(&name) {
                p.at(
                    k.span(),
                    ProblemCode::UnknownField,
                    format!(
                        "unknown field {:?} in {} (allowed: {})",
                        k.get_ref(),
                        self.what,
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    pub(crate) fn get(&self, field: &str) -> Option<&'a Value<'i>> {
        self.table
            .iter()
            .find(|(k, _)| {
                let name: &str = k.get_ref();
                name == field
            })
            .map(|(_, v)| v)
    }

    fn missing(&self, p: &mut Problems<'_>, field: &str) {
        p.at(
            self.span.clone(),
            ProblemCode::MissingField,
            format!("{} is missing the required field {field:?}", self.what),
        );
    }

    fn wrong_type(&self, p: &mut Problems<'_>, field: &str, v: &Value<'_>, expected: &str) {
        p.at(
            v.span(),
            ProblemCode::WrongType,
            format!(
                "{field:?} in {} must be {expected}, found {}",
                self.what,
                v.get_ref().type_str()
            ),
        );
    }

    pub(crate) fn str(&self, p: &mut Problems<'_>, field: &str) -> Option<At<&'a str>> {
        let v = self.get(field)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.as_ref(),
                span: v.span(),
            }),
            _ => {
                self.wrong_type(p, field, v, "a string");
                None
            }
        }
    }

    pub(crate) fn req_str(&self, p: &mut Problems<'_>, field: &str) -> Option<At<&'a str>> {
        if self.get(field).is_none() {
            self.missing(p, field);
        }
        self.str(p, field)
    }

    pub(crate) fn bool(&self, p: &mut Problems<'_>, field: &str) -> Option<bool> {
        let v = self.get(field)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(p, field, v, "true or false");
                None
            }
        }
    }

    /// A non-negative integer that fits in u64.
    pub(crate) fn uint(&self, p: &mut Problems<'_>, field: &str) -> Option<At<u64>> {
        let v = self.get(field)?;
        match v.get_ref() {
            DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
                Ok(value) => Some(At {
                    value,
                    span: v.span(),
                }),
                Err(_) => {
                    p.at(
                        v.span(),
                        ProblemCode::OutOfRange,
                        format!(
                            "{field:?} in {} must be a non-negative whole number",
                            self.what
                        ),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(p, field, v, "an integer");
                None
            }
        }
    }

    pub(crate) fn req_uint(&self, p: &mut Problems<'_>, field: &str) -> Option<At<u64>> {
        if self.get(field).is_none() {
            self.missing(p, field);
        }
        self.uint(p, field)
    }

    pub(crate) fn array(&self, p: &mut Problems<'_>, field: &str) -> Option<&'a [Value<'i>]> {
        let v = self.get(field)?;
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(p, field, v, "an array");
                None
            }
        }
    }

    pub(crate) fn sub(&self, p: &mut Problems<'_>, field: &str, what: String) -> Option<Self> {
        let v = self.get(field)?;
        Obj::from_value(p, v, what)
    }

    /// A Base58Check address field.
    pub(crate) fn req_address(&self, p: &mut Problems<'_>, field: &str) -> Option<At<Address>> {
        let s = self.req_str(p, field)?;
        address(p, &s)
    }

    /// A duration field ("24h").
    pub(crate) fn duration(&self, p: &mut Problems<'_>, field: &str) -> Option<At<u64>> {
        let s = self.str(p, field)?;
        duration(p, &s, &format!("{field:?} in {}", self.what))
    }
}

/// Parses a Base58Check address; hex is refused so that every address in a policy has one
/// spelling an auditor can compare by eye.
pub(crate) fn address(p: &mut Problems<'_>, s: &At<&str>) -> Option<At<Address>> {
    match Address::from_base58(s.value) {
        Ok(a) => Some(At {
            value: a,
            span: s.span.clone(),
        }),
        Err(e) => {
            p.at(
                s.span.clone(),
                ProblemCode::BadAddress,
                format!(
                    "bad address {:?}: {e} (addresses are Base58Check, T…)",
                    s.value
                ),
            );
            None
        }
    }
}

pub(crate) fn duration(p: &mut Problems<'_>, s: &At<&str>, what: &str) -> Option<At<u64>> {
    match parse_duration(s.value) {
        Ok(ms) => Some(At {
            value: ms,
            span: s.span.clone(),
        }),
        Err(e) => {
            p.at(
                s.span.clone(),
                ProblemCode::BadDuration,
                format!("bad duration {:?} for {what}: {e}", s.value),
            );
            None
        }
    }
}

/// Parses an amount string (`"50000.5"`) and refuses zero: every limit here must allow
/// something, a limit of zero is written by removing the permission instead.
pub(crate) fn positive_amount(
    p: &mut Problems<'_>,
    v: &Value<'_>,
    decimals: u8,
    what: &str,
) -> Option<U256> {
    let DeValue::String(s) = v.get_ref() else {
        p.at(
            v.span(),
            ProblemCode::WrongType,
            format!(
                "{what} must be a quoted decimal string such as \"50000.5\" (so it is exact), found {}",
                v.get_ref().type_str()
            ),
        );
        return None;
    };
    match parse_amount(s, decimals) {
        Ok(a) if a == U256::ZERO => {
            p.at(
                v.span(),
                ProblemCode::ZeroAmount,
                format!("{what} must be greater than zero"),
            );
            None
        }
        Ok(a) => Some(a),
        Err(e) => {
            p.at(
                v.span(),
                ProblemCode::BadAmount,
                format!("bad amount {s:?} for {what}: {e}"),
            );
            None
        }
    }
}

/// The strings of an array of strings, reporting non-strings.
pub(crate) fn strings<'a>(
    p: &mut Problems<'_>,
    items: &'a [Value<'_>],
    what: &str,
) -> Vec<At<&'a str>> {
    let mut out = Vec::new();
    for v in items {
        match v.get_ref() {
            DeValue::String(s) => out.push(At {
                value: s.as_ref(),
                span: v.span(),
            }),
            other => p.at(
                v.span(),
                ProblemCode::WrongType,
                format!("{what} must list strings, found {}", other.type_str()),
            ),
        }
    }
    out
}
