//! A strict protobuf reader for the few messages the signer accepts.
//!
//! Unlike a general decoder it refuses everything a canonical encoder would not produce:
//! unknown fields, repeats of singular fields, fields out of number order, explicitly
//! encoded defaults, non-minimal varints. It never allocates and never panics.

use super::DecodeError;

/// The two wire shapes our schemas use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Wire type 0 (int32, int64, enum).
    Varint,
    /// Wire type 2 (bytes, string, embedded message).
    Bytes,
}

impl Kind {
    fn wire_type(self) -> u8 {
        match self {
            Kind::Varint => 0,
            Kind::Bytes => 2,
        }
    }
}

/// One field a message may carry.
pub struct FieldSpec {
    pub number: u32,
    pub name: &'static str,
    pub kind: Kind,
    pub repeated: bool,
}

/// A message's accepted fields; anything else is refused.
pub struct Schema {
    pub message: &'static str,
    pub fields: &'static [FieldSpec],
}

/// Highest field number any schema uses, plus one.
pub const FIELD_SLOTS: usize = 19;

#[derive(Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields seen in one message, indexed by field number.
pub struct Fields<'a> {
    first: [Option<Value<'a>>; FIELD_SLOTS],
    count: [u32; FIELD_SLOTS],
}

impl<'a> Fields<'a> {
    /// The varint value of field `n`, 0 when absent.
    pub fn varint(&self, n: usize) -> u64 {
        match self.first.get(n) {
            Some(Some(Value::Varint(v))) => *v,
            _ => 0,
        }
    }

    /// The varint of field `n` as a signed 64-bit integer (two's complement).
    pub fn int64(&self, n: usize) -> i64 {
        self.varint(n) as i64
    }

    /// The first value of bytes field `n`, empty when absent.
    pub fn bytes(&self, n: usize) -> &'a [u8] {
        match self.first.get(n) {
            Some(Some(Value::Bytes(b))) => b,
            _ => &[],
        }
    }

    /// How many times field `n` appeared.
    pub fn count(&self, n: usize) -> u32 {
        self.count.get(n).copied().unwrap_or(0)
    }
}

/// Reads one varint at `*pos`, refusing truncation, overflow and non-minimal forms.
pub fn read_varint(
    buf: &[u8],
    pos: &mut usize,
    message: &'static str,
    field: &'static str,
) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&b) = buf.get(*pos) else {
            return Err(DecodeError::Truncated { message, field });
        };
        *pos += 1;
        if i == 9 && b > 1 {
            return Err(DecodeError::VarintOverflow { message, field });
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(DecodeError::NonMinimalVarint { message, field });
            }
            return Ok(value);
        }
    }
    Err(DecodeError::VarintOverflow { message, field })
}

/// Parses `buf` as one message of `schema`, strictly.
pub fn parse<'a>(buf: &'a [u8], schema: &Schema) -> Result<Fields<'a>, DecodeError> {
    let message = schema.message;
    let mut fields = Fields {
        first: [None; FIELD_SLOTS],
        count: [0; FIELD_SLOTS],
    };
    let mut pos = 0usize;
    let mut last = 0u64;
    while pos < buf.len() {
        let start = pos;
        let key = read_varint(buf, &mut pos, message, "tag")?;
        let number = key >> 3;
        let wire_type = (key & 7) as u8;
        if number == 0 {
            if buf[start..].iter().all(|&b| b == 0) {
                return Err(DecodeError::TrailingBytes {
                    message,
                    count: buf.len() - start,
                });
            }
            return Err(DecodeError::InvalidTag {
                message,
                offset: start,
            });
        }
        let Some(spec) = schema.fields.iter().find(|f| u64::from(f.number) == number) else {
            return Err(DecodeError::UnknownField { message, number });
        };
        let field = spec.name;
        if wire_type != spec.kind.wire_type() {
            return Err(DecodeError::WrongWireType {
                message,
                field,
                expected: spec.kind.wire_type(),
                found: wire_type,
            });
        }
        let slot = spec.number as usize;
        let seen = fields.count[slot];
        if seen > 0 && !spec.repeated {
            return Err(DecodeError::DuplicateField { message, field });
        }
        // Canonical order: ascending numbers, repeated elements contiguous.
        if number < last || (seen > 0 && number != last) {
            return Err(DecodeError::FieldOrder { message, field });
        }
        let value = match spec.kind {
            Kind::Varint => {
                let v = read_varint(buf, &mut pos, message, field)?;
                if v == 0 {
                    return Err(DecodeError::DefaultValueEncoded { message, field });
                }
                Value::Varint(v)
            }
            Kind::Bytes => {
                let len = read_varint(buf, &mut pos, message, field)?;
                let remaining = (buf.len() - pos) as u64;
                if len > remaining {
                    return Err(DecodeError::Truncated { message, field });
                }
                let end = pos + len as usize;
                let bytes = &buf[pos..end];
                pos = end;
                // proto3 omits empty singular fields; an empty element of a repeated
                // field is still canonical.
                if bytes.is_empty() && !spec.repeated {
                    return Err(DecodeError::DefaultValueEncoded { message, field });
                }
                Value::Bytes(bytes)
            }
        };
        if seen == 0 {
            fields.first[slot] = Some(value);
        }
        fields.count[slot] = seen + 1;
        last = number;
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Schema = Schema {
        message: "T",
        fields: &[
            FieldSpec {
                number: 1,
                name: "a",
                kind: Kind::Varint,
                repeated: false,
            },
            FieldSpec {
                number: 2,
                name: "b",
                kind: Kind::Bytes,
                repeated: true,
            },
        ],
    };

    fn code(buf: &[u8]) -> &'static str {
        match parse(buf, &S) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn varints() {
        let mut p = 0;
        assert_eq!(read_varint(&[0x96, 0x01], &mut p, "", ""), Ok(150));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        p = 0;
        assert_eq!(read_varint(&max, &mut p, "", ""), Ok(u64::MAX));
        let mut over = max;
        over[9] = 0x02;
        p = 0;
        assert_eq!(
            read_varint(&over, &mut p, "", "").map_err(|e| e.code()),
            Err("varint_overflow")
        );
        p = 0;
        assert_eq!(
            read_varint(&[0xff; 11], &mut p, "", "").map_err(|e| e.code()),
            Err("varint_overflow")
        );
        p = 0;
        assert_eq!(
            read_varint(&[0x80, 0x00], &mut p, "", "").map_err(|e| e.code()),
            Err("non_minimal_varint")
        );
        p = 0;
        assert_eq!(
            read_varint(&[0x80], &mut p, "", "").map_err(|e| e.code()),
            Err("truncated")
        );
    }

    #[test]
    fn shapes() {
        assert_eq!(code(&[]), "ok");
        assert_eq!(code(&[0x08, 0x05, 0x12, 0x00, 0x12, 0x01, 0x07]), "ok");
        assert_eq!(code(&[0x08, 0x05, 0x08, 0x06]), "duplicate_field");
        assert_eq!(code(&[0x12, 0x00, 0x08, 0x05]), "field_order");
        assert_eq!(code(&[0x12, 0x00, 0x08, 0x05, 0x12, 0x00]), "field_order");
        assert_eq!(code(&[0x08, 0x00]), "default_value_encoded");
        assert_eq!(code(&[0x0a, 0x00]), "wrong_wire_type");
        assert_eq!(code(&[0x18, 0x01]), "unknown_field");
        assert_eq!(code(&[0x12, 0x05, 0x01]), "truncated");
        assert_eq!(code(&[0x08, 0x05, 0x00, 0x00]), "trailing_bytes");
        assert_eq!(code(&[0x08, 0x05, 0x00, 0x01]), "invalid_tag");
        assert_eq!(code(&[0x88, 0x00]), "non_minimal_varint");
    }
}
