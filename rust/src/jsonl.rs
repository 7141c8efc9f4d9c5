//! Arrow `RecordBatch` -> JSON Lines, one object per row.
//!
//! The encoder is built once from a positional field list: every `"key":`
//! fragment (with its leading `{` or `,`) is pre-encoded then. Per batch each
//! column is checked and bound once to a typed writer over its raw buffers;
//! rows are then written into one preallocated `Vec<u8>` with no per-value
//! allocation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, GenericStringArray, OffsetSizeTrait, RecordBatch};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::{DataType, TimeUnit};

use crate::escape::{write_json_string, write_json_string_in};
use crate::floatfmt;
use crate::globalid::GlobalIdPrefix;
use crate::sink::{push_int, push_padded, push_range, DecimalInt, Fragment};
use crate::timefmt::{self, TimestampFormatter};

/// What a field's column holds and how its values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Integer id -> base64 `"TypeName:<id>"` string.
    GlobalId,
    /// Any integer -> JSON number.
    Int,
    /// Float (or integer) -> JSON number; NaN and ±inf -> `null`.
    Float,
    /// Boolean -> `true` / `false`.
    Bool,
    /// UTF-8 string -> escaped JSON string.
    String,
    /// Timestamp (any unit, read as UTC) -> `"YYYY-MM-DDTHH:MM:SS.ffffffZ"`.
    Time,
    /// Date32/Date64 -> `"YYYY-MM-DD"`.
    Date,
    /// UTF-8 string holding JSON text -> embedded raw.
    Json,
}

impl FieldKind {
    pub const ALL: [FieldKind; 8] = [
        FieldKind::GlobalId,
        FieldKind::Int,
        FieldKind::Float,
        FieldKind::Bool,
        FieldKind::String,
        FieldKind::Time,
        FieldKind::Date,
        FieldKind::Json,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FieldKind::GlobalId => "global_id",
            FieldKind::Int => "int",
            FieldKind::Float => "float",
            FieldKind::Bool => "bool",
            FieldKind::String => "string",
            FieldKind::Time => "time",
            FieldKind::Date => "date",
            FieldKind::Json => "json",
        }
    }

    pub fn parse(name: &str) -> Option<FieldKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One output key: its name, kind and (for `global_id`) GraphQL type name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: String,
    pub kind: FieldKind,
    pub type_name: Option<String>,
}

impl FieldSpec {
    /// Parses `(name, kind, extra)` as given by Python. `extra` is the GraphQL
    /// type name for `global_id` and ignored for every other kind.
    pub fn parse(name: &str, kind: &str, extra: Option<&str>) -> Result<Self, SpecError> {
        let parsed = FieldKind::parse(kind).ok_or_else(|| SpecError::UnknownKind {
            field: name.to_owned(),
            kind: kind.to_owned(),
        })?;
        let type_name = match (parsed, extra) {
            (FieldKind::GlobalId, Some(t)) if !t.is_empty() => Some(t.to_owned()),
            (FieldKind::GlobalId, _) => {
                return Err(SpecError::MissingTypeName {
                    field: name.to_owned(),
                })
            }
            (_, extra) => extra.map(str::to_owned),
        };
        Ok(Self {
            name: name.to_owned(),
            kind: parsed,
            type_name,
        })
    }
}

/// An invalid field list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    UnknownKind { field: String, kind: String },
    MissingTypeName { field: String },
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::UnknownKind { field, kind } => {
                let known: Vec<&str> = FieldKind::ALL.iter().map(|k| k.name()).collect();
                write!(
                    f,
                    "field {field:?} has unknown kind {kind:?} (expected one of: {})",
                    known.join(", ")
                )
            }
            SpecError::MissingTypeName { field } => write!(
                f,
                "field {field:?} of kind \"global_id\" needs a GraphQL type name as its third item"
            ),
        }
    }
}

impl std::error::Error for SpecError {}

/// A batch that does not fit the encoder's field list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    ColumnCount {
        expected: usize,
        got: usize,
    },
    ColumnType {
        field: String,
        kind: FieldKind,
        data_type: DataType,
    },
    OutOfRange {
        field: String,
        row: usize,
        value: i64,
        data_type: DataType,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::ColumnCount { expected, got } => write!(
                f,
                "batch has {got} columns but the encoder has {expected} fields"
            ),
            EncodeError::ColumnType {
                field,
                kind,
                data_type,
            } => write!(
                f,
                "field {field:?} of kind {:?} cannot be encoded from an Arrow column of type {data_type}",
                kind.name()
            ),
            EncodeError::OutOfRange {
                field,
                row,
                value,
                data_type,
            } => write!(
                f,
                "field {field:?} row {row}: {data_type} value {value} is outside years 0001-9999"
            ),
        }
    }
}

impl std::error::Error for EncodeError {}

#[derive(Debug)]
struct EncodedField {
    spec: FieldSpec,
    /// `{"name":` for the first field, `,"name":` for the others.
    key: Fragment,
    global_id: Option<GlobalIdPrefix>,
}

/// Encodes record batches as JSON Lines following a positional field list.
///
/// Immutable apart from a size hint, so one encoder can be shared by threads.
#[derive(Debug)]
pub struct JsonlEncoder {
    fields: Vec<EncodedField>,
    /// Output bytes per row of the previous batch (0 before the first).
    bytes_per_row_hint: AtomicU64,
}

impl JsonlEncoder {
    pub fn new(specs: Vec<FieldSpec>) -> Self {
        let fields = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut key = vec![if i == 0 { b'{' } else { b',' }];
                write_json_string(&mut key, spec.name.as_bytes());
                key.push(b':');
                let global_id = match spec.kind {
                    FieldKind::GlobalId => spec.type_name.as_deref().map(GlobalIdPrefix::new),
                    _ => None,
                };
                EncodedField {
                    spec,
                    key: Fragment::new(&key),
                    global_id,
                }
            })
            .collect();
        Self {
            fields,
            bytes_per_row_hint: AtomicU64::new(0),
        }
    }

    pub fn fields(&self) -> impl Iterator<Item = &FieldSpec> {
        self.fields.iter().map(|f| &f.spec)
    }

    /// Encodes every row of `batch`; an empty batch gives an empty buffer.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(batch, &mut out)?;
        Ok(out)
    }

    /// Appends every row of `batch` to `out`.
    pub fn encode_into(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if batch.num_columns() != self.fields.len() {
            return Err(EncodeError::ColumnCount {
                expected: self.fields.len(),
                got: batch.num_columns(),
            });
        }
        let mut columns = self
            .fields
            .iter()
            .zip(batch.columns())
            .map(|(field, array)| BoundColumn::bind(field, array))
            .collect::<Result<Vec<_>, _>>()?;
        let num_rows = batch.num_rows();
        if num_rows == 0 {
            return Ok(());
        }

        let start = out.len();
        out.reserve(self.estimate_len(&columns, num_rows));
        if columns.is_empty() {
            for _ in 0..num_rows {
                out.extend_from_slice(b"{}\n");
            }
        } else {
            for row in 0..num_rows {
                for column in columns.iter_mut() {
                    column.write(row, out);
                }
                out.extend_from_slice(b"}\n");
            }
        }
        let per_row = (out.len() - start).div_ceil(num_rows);
        self.bytes_per_row_hint
            .store(per_row as u64, Ordering::Relaxed);
        Ok(())
    }

    fn estimate_len(&self, columns: &[BoundColumn<'_>], num_rows: usize) -> usize {
        let hint = self.bytes_per_row_hint.load(Ordering::Relaxed) as usize;
        let per_row = if hint > 0 {
            // A little headroom so a slightly wider batch does not reallocate.
            hint + hint / 16
        } else {
            3 + columns
                .iter()
                .map(|c| c.key.len() + c.writer.estimate_bytes(num_rows))
                .sum::<usize>()
        };
        per_row.saturating_mul(num_rows).saturating_add(64)
    }
}

/// A column bound to its field for the duration of one batch.
struct BoundColumn<'a> {
    key: &'a Fragment,
    /// Only set when the column has nulls, so the common case skips the check.
    nulls: Option<&'a NullBuffer>,
    writer: Box<dyn ValueWriter + 'a>,
}

impl<'a> BoundColumn<'a> {
    fn bind(field: &'a EncodedField, array: &'a ArrayRef) -> Result<Self, EncodeError> {
        let writer = make_writer(field, array)?;
        let nulls = array.nulls().filter(|n| n.null_count() > 0);
        Ok(Self {
            key: &field.key,
            nulls,
            writer,
        })
    }

    #[inline(always)]
    fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        self.key.push_to(out);
        match self.nulls {
            Some(nulls) if nulls.is_null(row) => out.extend_from_slice(b"null"),
            _ => self.writer.write(row, out),
        }
    }
}

/// Writes the (non-null) value at `row`.
trait ValueWriter {
    fn write(&mut self, row: usize, out: &mut Vec<u8>);

    /// Rough bytes per row, used to size the output of the first batch.
    fn estimate_bytes(&self, num_rows: usize) -> usize;
}

macro_rules! dispatch_int {
    ($array:expr, $make:ident, $($arg:expr),*) => {
        match $array.data_type() {
            DataType::Int8 => Some($make($array.as_primitive::<Int8Type>().values(), $($arg),*)),
            DataType::Int16 => Some($make($array.as_primitive::<Int16Type>().values(), $($arg),*)),
            DataType::Int32 => Some($make($array.as_primitive::<Int32Type>().values(), $($arg),*)),
            DataType::Int64 => Some($make($array.as_primitive::<Int64Type>().values(), $($arg),*)),
            DataType::UInt8 => Some($make($array.as_primitive::<UInt8Type>().values(), $($arg),*)),
            DataType::UInt16 => Some($make($array.as_primitive::<UInt16Type>().values(), $($arg),*)),
            DataType::UInt32 => Some($make($array.as_primitive::<UInt32Type>().values(), $($arg),*)),
            DataType::UInt64 => Some($make($array.as_primitive::<UInt64Type>().values(), $($arg),*)),
            _ => None,
        }
    };
}

fn make_writer<'a>(
    field: &'a EncodedField,
    array: &'a ArrayRef,
) -> Result<Box<dyn ValueWriter + 'a>, EncodeError> {
    let data_type = array.data_type();
    if *data_type == DataType::Null {
        return Ok(Box::new(NullWriter));
    }
    let writer: Option<Box<dyn ValueWriter + 'a>> = match field.spec.kind {
        FieldKind::GlobalId => {
            let prefix = field
                .global_id
                .as_ref()
                .expect("global_id fields always have a prefix");
            dispatch_int!(array, global_id_writer, prefix)
        }
        FieldKind::Int => dispatch_int!(array, int_writer,),
        FieldKind::Float => match data_type {
            DataType::Float64 => Some(Box::new(FloatWriter {
                values: array.as_primitive::<Float64Type>().values(),
            })),
            DataType::Float32 => Some(Box::new(FloatWriter {
                values: array.as_primitive::<Float32Type>().values(),
            })),
            _ => dispatch_int!(array, int_writer,),
        },
        FieldKind::Bool => match data_type {
            DataType::Boolean => Some(Box::new(BoolWriter {
                values: array.as_boolean().values(),
            })),
            _ => None,
        },
        FieldKind::String => string_writer::<false>(array),
        FieldKind::Json => string_writer::<true>(array),
        FieldKind::Time => match data_type {
            DataType::Timestamp(unit, _) => {
                let values: &[i64] = match unit {
                    TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
                    TimeUnit::Millisecond => {
                        array.as_primitive::<TimestampMillisecondType>().values()
                    }
                    TimeUnit::Microsecond => {
                        array.as_primitive::<TimestampMicrosecondType>().values()
                    }
                    TimeUnit::Nanosecond => {
                        array.as_primitive::<TimestampNanosecondType>().values()
                    }
                };
                let (lo, hi) = timefmt::timestamp_range(*unit);
                check_range(field, array, values, lo, hi)?;
                Some(Box::new(TimestampWriter {
                    values,
                    unit: *unit,
                    formatter: TimestampFormatter::default(),
                }))
            }
            _ => None,
        },
        FieldKind::Date => match data_type {
            DataType::Date32 => {
                let values = array.as_primitive::<Date32Type>().values();
                check_range(
                    field,
                    array,
                    values,
                    timefmt::MIN_EPOCH_DAYS as i32,
                    timefmt::MAX_EPOCH_DAYS as i32,
                )?;
                Some(Box::new(DateWriter::new(values, 1)))
            }
            DataType::Date64 => {
                const MS_PER_DAY: i64 = 86_400_000;
                let values = array.as_primitive::<Date64Type>().values();
                check_range(
                    field,
                    array,
                    values,
                    timefmt::MIN_EPOCH_DAYS * MS_PER_DAY,
                    (timefmt::MAX_EPOCH_DAYS + 1) * MS_PER_DAY - 1,
                )?;
                Some(Box::new(DateWriter::new(values, MS_PER_DAY)))
            }
            _ => None,
        },
    };
    writer.ok_or_else(|| EncodeError::ColumnType {
        field: field.spec.name.clone(),
        kind: field.spec.kind,
        data_type: data_type.clone(),
    })
}

/// Fails on the first non-null value outside `lo..=hi`.
fn check_range<T: Copy + PartialOrd + Into<i64>>(
    field: &EncodedField,
    array: &ArrayRef,
    values: &[T],
    lo: T,
    hi: T,
) -> Result<(), EncodeError> {
    let out_of_range = |v: &T| *v < lo || *v > hi;
    // Fast path: no value at all (null slots included) is out of range.
    if !values.iter().any(out_of_range) {
        return Ok(());
    }
    let bad = values
        .iter()
        .enumerate()
        .find(|(row, v)| array.is_valid(*row) && out_of_range(v));
    match bad {
        None => Ok(()),
        Some((row, v)) => Err(EncodeError::OutOfRange {
            field: field.spec.name.clone(),
            row,
            value: (*v).into(),
            data_type: array.data_type().clone(),
        }),
    }
}

struct NullWriter;

impl ValueWriter for NullWriter {
    fn write(&mut self, _row: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(b"null");
    }

    fn estimate_bytes(&self, _num_rows: usize) -> usize {
        4
    }
}

struct IntWriter<'a, T> {
    values: &'a [T],
}

fn int_writer<'a, T: DecimalInt + 'a>(values: &'a [T]) -> Box<dyn ValueWriter + 'a> {
    Box::new(IntWriter { values })
}

impl<T: DecimalInt> ValueWriter for IntWriter<'_, T> {
    #[inline]
    fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        push_int(out, self.values[row]);
    }

    fn estimate_bytes(&self, _num_rows: usize) -> usize {
        std::mem::size_of::<T>() * 5 / 2 + 1
    }
}

struct GlobalIdWriter<'a, T> {
    values: &'a [T],
    prefix: &'a GlobalIdPrefix,
}

fn global_id_writer<'a, T: DecimalInt + 'a>(
    values: &'a [T],
    prefix: &'a GlobalIdPrefix,
) -> Box<dyn ValueWriter + 'a> {
    Box::new(GlobalIdWriter { values, prefix })
}

impl<T: DecimalInt> ValueWriter for GlobalIdWriter<'_, T> {
    #[inline]
    fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        self.prefix.write_quoted(self.values[row], out);
    }

    fn estimate_bytes(&self, _num_rows: usize) -> usize {
        self.prefix.typical_quoted_len()
    }
}

/// `f32`/`f64` written by zmij (shortest round-trip text); non-finite values
/// have no JSON form.
trait JsonFloat: zmij::Float + Copy {
    fn is_finite(self) -> bool;

    /// Writes short decimals without zmij (see `floatfmt`); `false` if not one.
    fn write_short(self, _out: &mut Vec<u8>) -> bool {
        false
    }
}

impl JsonFloat for f32 {
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl JsonFloat for f64 {
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }

    #[inline(always)]
    fn write_short(self, out: &mut Vec<u8>) -> bool {
        floatfmt::write_short_decimal(self, out)
    }
}

struct FloatWriter<'a, T> {
    values: &'a [T],
}

impl<T: JsonFloat> ValueWriter for FloatWriter<'_, T> {
    #[inline]
    fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        let v = self.values[row];
        if v.write_short(out) {
            return;
        }
        if v.is_finite() {
            floatfmt::write_python_repr(v, out);
        } else {
            out.extend_from_slice(b"null");
        }
    }

    fn estimate_bytes(&self, _num_rows: usize) -> usize {
        18
    }
}

struct BoolWriter<'a> {
    values: &'a BooleanBuffer,
}

impl ValueWriter for BoolWriter<'_> {
    #[inline]
    fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        // Both literals padded to one size so the copy is fixed-size.
        if self.values.value(row) {
            push_padded(out, b"true ", 4);
        } else {
            push_padded(out, b"false", 5);
        }
    }

    fn estimate_bytes(&self, _num_rows: usize) -> usize {
        5
    }
}

fn string_writer<'a, const RAW: bool>(array: &'a ArrayRef) -> Option<Box<dyn ValueWriter + 'a>> {
    match array.data_type() {
        DataType::Utf8 => Some(Box::new(StringWriter::<i32, RAW>::new(array.as_string()))),
        DataType::LargeUtf8 => Some(Box::new(StringWriter::<i64, RAW>::new(array.as_string()))),
        DataType::Utf8View => Some(Box::new(StringViewWriter::<RAW> {
            array: array.as_string_view(),
        })),
        _ => None,
    }
}

/// Writes the string `data[start..end]`: escaped and quoted, or (`RAW`, for
/// JSON text) embedded as is, with an empty string as `null` since it is not
/// JSON. Bytes after `end` may be read, never written.
#[inline(always)]
fn write_str_value<const RAW: bool>(out: &mut Vec<u8>, data: &[u8], start: usize, end: usize) {
    if RAW {
        if start == end {
            out.extend_from_slice(b"null");
        } else {
            push_range(out, data, start, end);
        }
    } else {
        write_json_string_in(out, data, start, end);
    }
}

struct StringWriter<'a, O, const RAW: bool> {
    offsets: &'a [O],
    data: &'a [u8],
}

impl<'a, O: OffsetSizeTrait, const RAW: bool> StringWriter<'a, O, RAW> {
    fn new(array: &'a GenericStringArray<O>) -> Self {
        Self {
            offsets: array.value_offsets(),
            data: array.value_data(),
        }
    }
}

impl<O: OffsetSizeTrait, const RAW: bool> ValueWriter for StringWriter<'_, O, RAW> {
    #[inline]
    fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        let start = self.offsets[row].as_usize();
        let end = self.offsets[row + 1].as_usize();
        write_str_value::<RAW>(out, self.data, start, end);
    }

    fn estimate_bytes(&self, num_rows: usize) -> usize {
        let first = self.offsets.first().map_or(0, |o| o.as_usize());
        let last = self.offsets.last().map_or(0, |o| o.as_usize());
        (last - first) / num_rows.max(1) + 2
    }
}

struct StringViewWriter<'a, const RAW: bool> {
    array: &'a arrow_array::StringViewArray,
}

impl<const RAW: bool> ValueWriter for StringViewWriter<'_, RAW> {
    #[inline]
    fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        let value = self.array.value(row).as_bytes();
        write_str_value::<RAW>(out, value, 0, value.len());
    }

    fn estimate_bytes(&self, num_rows: usize) -> usize {
        let total: usize = self.array.lengths().map(|l| l as usize).sum();
        total / num_rows.max(1) + 2
    }
}

struct TimestampWriter<'a> {
    values: &'a [i64],
    unit: TimeUnit,
    formatter: TimestampFormatter,
}

impl ValueWriter for TimestampWriter<'_> {
    #[inline]
    fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        let micros = timefmt::to_epoch_micros(self.values[row], self.unit);
        self.formatter.write_quoted(micros, out);
    }

    fn estimate_bytes(&self, _num_rows: usize) -> usize {
        timefmt::QUOTED_TIMESTAMP_LEN
    }
}

/// Date32 (`per_day` = 1) or Date64 (`per_day` = ms per day) values, with the
/// previous day's text cached.
struct DateWriter<'a, T> {
    values: &'a [T],
    per_day: i64,
    last_day: i64,
    quoted: [u8; timefmt::DATE_LEN + 2],
}

impl<'a, T: Copy + Into<i64>> DateWriter<'a, T> {
    fn new(values: &'a [T], per_day: i64) -> Self {
        let mut quoted = [b'"'; timefmt::DATE_LEN + 2];
        quoted[1..=timefmt::DATE_LEN].copy_from_slice(&timefmt::format_date(0));
        Self {
            values,
            per_day,
            last_day: 0,
            quoted,
        }
    }
}

impl<T: Copy + Into<i64>> ValueWriter for DateWriter<'_, T> {
    #[inline]
    fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        let day = self.values[row].into().div_euclid(self.per_day);
        if day != self.last_day {
            self.quoted[1..=timefmt::DATE_LEN].copy_from_slice(&timefmt::format_date(day));
            self.last_day = day;
        }
        out.extend_from_slice(&self.quoted);
    }

    fn estimate_bytes(&self, _num_rows: usize) -> usize {
        timefmt::DATE_LEN + 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::builder::StringViewBuilder;
    use arrow_array::{
        BooleanArray, Date32Array, Date64Array, Float32Array, Float64Array, Int16Array, Int32Array,
        Int64Array, Int8Array, LargeStringArray, NullArray, RecordBatchOptions, StringArray,
        TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
        TimestampSecondArray, UInt64Array,
    };
    use arrow_schema::{Field, Schema};

    fn spec(name: &str, kind: &str, extra: Option<&str>) -> FieldSpec {
        FieldSpec::parse(name, kind, extra).unwrap()
    }

    fn batch(columns: Vec<ArrayRef>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn encode(specs: Vec<FieldSpec>, columns: Vec<ArrayRef>) -> String {
        let enc = JsonlEncoder::new(specs);
        String::from_utf8(enc.encode(&batch(columns)).unwrap()).unwrap()
    }

    fn one(kind: &str, extra: Option<&str>, column: ArrayRef) -> String {
        encode(vec![spec("v", kind, extra)], vec![column])
    }

    #[test]
    fn kinds_parse_and_unknown_is_rejected() {
        for kind in FieldKind::ALL {
            assert_eq!(FieldKind::parse(kind.name()), Some(kind));
        }
        let err = FieldSpec::parse("x", "decimal_string", None).unwrap_err();
        assert!(err.to_string().contains("decimal_string"), "{err}");
        assert!(err.to_string().contains("\"x\""), "{err}");
        let err = FieldSpec::parse("id", "global_id", None).unwrap_err();
        assert_eq!(err, SpecError::MissingTypeName { field: "id".into() });
    }

    #[test]
    fn mixed_row_key_order_and_nulls() {
        let specs = vec![
            spec("id", "global_id", Some("ViewerSession")),
            spec("sessionId", "string", None),
            spec("durationSeconds", "int", None),
            spec("latitude", "float", None),
            spec("record", "bool", None),
            spec("connectedAt", "time", None),
            spec("day", "date", None),
            spec("payload", "json", None),
        ];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![42, 7])),
            Arc::new(StringArray::from(vec![Some("abc"), None])),
            Arc::new(Int32Array::from(vec![None, Some(-5)])),
            Arc::new(Float64Array::from(vec![Some(1.5), Some(f64::NAN)])),
            Arc::new(BooleanArray::from(vec![Some(true), None])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_767_323_045_000_000), None])
                    .with_timezone("UTC"),
            ),
            Arc::new(Date32Array::from(vec![Some(0), Some(-1)])),
            Arc::new(StringArray::from(vec![Some(r#"{"a":[1,2]}"#), None])),
        ];
        let out = encode(specs, columns);
        assert_eq!(
            out,
            concat!(
                r#"{"id":"Vmlld2VyU2Vzc2lvbjo0Mg==","sessionId":"abc","durationSeconds":null,"latitude":1.5,"record":true,"connectedAt":"2026-01-02T03:04:05.000000Z","day":"1970-01-01","payload":{"a":[1,2]}}"#,
                "\n",
                r#"{"id":"Vmlld2VyU2Vzc2lvbjo3","sessionId":null,"durationSeconds":-5,"latitude":null,"record":null,"connectedAt":null,"day":"1969-12-31","payload":null}"#,
                "\n",
            )
        );
    }

    #[test]
    fn empty_batch_is_empty_output() {
        let out = encode(
            vec![spec("a", "int", None), spec("b", "string", None)],
            vec![
                Arc::new(Int64Array::from(Vec::<i64>::new())),
                Arc::new(StringArray::from(Vec::<&str>::new())),
            ],
        );
        assert_eq!(out, "");
    }

    #[test]
    fn zero_fields_write_empty_objects() {
        let enc = JsonlEncoder::new(vec![]);
        let schema = Arc::new(Schema::empty());
        let b = RecordBatch::try_new_with_options(
            schema,
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(2)),
        )
        .unwrap();
        assert_eq!(enc.encode(&b).unwrap(), b"{}\n{}\n");
    }

    #[test]
    fn all_null_columns() {
        let out = one("int", None, Arc::new(Int64Array::from(vec![None, None])));
        assert_eq!(out, "{\"v\":null}\n{\"v\":null}\n");
        let out = one("time", None, Arc::new(NullArray::new(2)));
        assert_eq!(out, "{\"v\":null}\n{\"v\":null}\n");
        let out = one(
            "string",
            None,
            Arc::new(StringArray::from(vec![None::<&str>])),
        );
        assert_eq!(out, "{\"v\":null}\n");
    }

    #[test]
    fn keys_are_escaped() {
        let out = encode(
            vec![spec("a\"b", "int", None), spec("é\n", "int", None)],
            vec![
                Arc::new(Int8Array::from(vec![1])),
                Arc::new(Int8Array::from(vec![2])),
            ],
        );
        assert_eq!(out, "{\"a\\\"b\":1,\"é\\n\":2}\n");
    }

    #[test]
    fn integer_extremes() {
        let out = one(
            "int",
            None,
            Arc::new(Int64Array::from(vec![i64::MIN, i64::MAX, 0])),
        );
        assert_eq!(
            out,
            "{\"v\":-9223372036854775808}\n{\"v\":9223372036854775807}\n{\"v\":0}\n"
        );
        let out = one("int", None, Arc::new(UInt64Array::from(vec![u64::MAX])));
        assert_eq!(out, "{\"v\":18446744073709551615}\n");
        let out = one(
            "global_id",
            Some("T"),
            Arc::new(Int16Array::from(vec![i16::MIN])),
        );
        assert_eq!(out, "{\"v\":\"VDotMzI3Njg=\"}\n"); // base64("T:-32768")
    }

    #[test]
    fn floats() {
        let out = one(
            "float",
            None,
            Arc::new(Float64Array::from(vec![
                0.1,
                -0.0,
                1e300,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                5e-324,
            ])),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "{\"v\":0.1}",
                "{\"v\":-0.0}",
                "{\"v\":1e+300}",
                "{\"v\":null}",
                "{\"v\":null}",
                "{\"v\":null}",
                "{\"v\":5e-324}",
            ]
        );
        let out = one(
            "float",
            None,
            Arc::new(Float32Array::from(vec![0.1f32, f32::NAN])),
        );
        assert_eq!(out, "{\"v\":0.1}\n{\"v\":null}\n");
        let out = one("float", None, Arc::new(Int32Array::from(vec![3])));
        assert_eq!(out, "{\"v\":3}\n");
    }

    #[test]
    fn floats_round_trip_from_random_bits() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut f64s = Vec::new();
        let mut f32s = Vec::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f64s.push(f64::from_bits(x));
            f32s.push(f32::from_bits(x as u32));
        }
        let out = one("float", None, Arc::new(Float64Array::from(f64s.clone())));
        for (line, v) in out.lines().zip(&f64s) {
            let text = &line[5..line.len() - 1];
            if v.is_finite() {
                assert_eq!(
                    text.parse::<f64>().unwrap().to_bits(),
                    v.to_bits(),
                    "{line}"
                );
            } else {
                assert_eq!(text, "null");
            }
        }
        let out = one("float", None, Arc::new(Float32Array::from(f32s.clone())));
        for (line, v) in out.lines().zip(&f32s) {
            let text = &line[5..line.len() - 1];
            if v.is_finite() {
                assert_eq!(
                    text.parse::<f32>().unwrap().to_bits(),
                    v.to_bits(),
                    "{line}"
                );
            } else {
                assert_eq!(text, "null");
            }
        }
    }

    #[test]
    fn strings_all_layouts() {
        let values = vec![
            Some("plain"),
            Some("q\"\\\n\u{1}\u{7f}"),
            Some("😀 é"),
            None,
            Some(""),
        ];
        let expected = "{\"v\":\"plain\"}\n{\"v\":\"q\\\"\\\\\\n\\u0001\\u007f\"}\n{\"v\":\"😀 é\"}\n{\"v\":null}\n{\"v\":\"\"}\n";
        assert_eq!(
            one("string", None, Arc::new(StringArray::from(values.clone()))),
            expected
        );
        assert_eq!(
            one(
                "string",
                None,
                Arc::new(LargeStringArray::from(values.clone()))
            ),
            expected
        );
        let mut view = StringViewBuilder::new();
        for v in &values {
            view.append_option(*v);
        }
        assert_eq!(one("string", None, Arc::new(view.finish())), expected);
    }

    #[test]
    fn sliced_columns_use_their_offset() {
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["a", "bb", "ccc", "dddd"]));
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4)]));
        let b = batch(vec![strings, ints]).slice(1, 2);
        let enc = JsonlEncoder::new(vec![spec("s", "string", None), spec("i", "int", None)]);
        let out = String::from_utf8(enc.encode(&b).unwrap()).unwrap();
        assert_eq!(out, "{\"s\":\"bb\",\"i\":null}\n{\"s\":\"ccc\",\"i\":3}\n");
    }

    #[test]
    fn json_is_embedded_raw() {
        let out = one(
            "json",
            None,
            Arc::new(StringArray::from(vec![
                Some("[1,\"x\"]"),
                Some("null"),
                Some(""),
            ])),
        );
        assert_eq!(out, "{\"v\":[1,\"x\"]}\n{\"v\":null}\n{\"v\":null}\n");
    }

    #[test]
    fn timestamps_every_unit() {
        let expected = "{\"v\":\"1969-12-31T23:59:59.000000Z\"}\n";
        assert_eq!(
            one("time", None, Arc::new(TimestampSecondArray::from(vec![-1]))),
            expected
        );
        let out = one(
            "time",
            None,
            Arc::new(TimestampMillisecondArray::from(vec![-1])),
        );
        assert_eq!(out, "{\"v\":\"1969-12-31T23:59:59.999000Z\"}\n");
        let out = one(
            "time",
            None,
            Arc::new(TimestampNanosecondArray::from(vec![-1, 1_999]).with_timezone("+02:00")),
        );
        assert_eq!(
            out,
            "{\"v\":\"1969-12-31T23:59:59.999999Z\"}\n{\"v\":\"1970-01-01T00:00:00.000001Z\"}\n"
        );
        let (lo, hi) = timefmt::timestamp_range(TimeUnit::Second);
        let out = one(
            "time",
            None,
            Arc::new(TimestampSecondArray::from(vec![lo, hi])),
        );
        assert_eq!(
            out,
            "{\"v\":\"0001-01-01T00:00:00.000000Z\"}\n{\"v\":\"9999-12-31T23:59:59.000000Z\"}\n"
        );
    }

    #[test]
    fn out_of_range_time_is_an_error_unless_null() {
        let (_, hi) = timefmt::timestamp_range(TimeUnit::Second);
        let enc = JsonlEncoder::new(vec![spec("t", "time", None)]);
        let bad = batch(vec![Arc::new(TimestampSecondArray::from(vec![0, hi + 1]))]);
        let err = enc.encode(&bad).unwrap_err();
        assert!(
            matches!(err, EncodeError::OutOfRange { row: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("\"t\""));
        // The same raw value under a null slot is ignored.
        let arr = TimestampSecondArray::from(vec![Some(0), None]);
        let (values, nulls) = (arr.values().clone(), arr.nulls().cloned());
        let mut raw = values.to_vec();
        raw[1] = i64::MAX;
        let masked = TimestampSecondArray::new(raw.into(), nulls);
        let out = enc.encode(&batch(vec![Arc::new(masked)])).unwrap();
        assert_eq!(
            out,
            b"{\"t\":\"1970-01-01T00:00:00.000000Z\"}\n{\"t\":null}\n"
        );
    }

    #[test]
    fn dates() {
        let out = one(
            "date",
            None,
            Arc::new(Date32Array::from(vec![
                0, 11_016, -719_162, 2_932_896, 11_016,
            ])),
        );
        assert_eq!(
            out,
            "{\"v\":\"1970-01-01\"}\n{\"v\":\"2000-02-29\"}\n{\"v\":\"0001-01-01\"}\n{\"v\":\"9999-12-31\"}\n{\"v\":\"2000-02-29\"}\n"
        );
        let out = one("date", None, Arc::new(Date64Array::from(vec![-1])));
        assert_eq!(out, "{\"v\":\"1969-12-31\"}\n");
        let enc = JsonlEncoder::new(vec![spec("d", "date", None)]);
        let err = enc
            .encode(&batch(vec![Arc::new(Date32Array::from(vec![-719_163]))]))
            .unwrap_err();
        assert!(matches!(err, EncodeError::OutOfRange { .. }));
    }

    #[test]
    fn wrong_column_count_and_type() {
        let enc = JsonlEncoder::new(vec![spec("a", "int", None), spec("b", "bool", None)]);
        let err = enc
            .encode(&batch(vec![Arc::new(Int64Array::from(vec![1]))]))
            .unwrap_err();
        assert_eq!(
            err,
            EncodeError::ColumnCount {
                expected: 2,
                got: 1
            }
        );
        let err = enc
            .encode(&batch(vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(StringArray::from(vec!["x"])),
            ]))
            .unwrap_err();
        assert!(matches!(&err, EncodeError::ColumnType { field, .. } if field == "b"));
        assert!(err.to_string().contains("\"b\"") && err.to_string().contains("Utf8"));
        let enc = JsonlEncoder::new(vec![spec("id", "global_id", Some("T"))]);
        let err = enc
            .encode(&batch(vec![Arc::new(Float64Array::from(vec![1.0]))]))
            .unwrap_err();
        assert!(matches!(err, EncodeError::ColumnType { .. }));
    }

    #[test]
    fn size_hint_follows_previous_batch() {
        let enc = JsonlEncoder::new(vec![spec("s", "string", None)]);
        let long = "x".repeat(1000);
        let b = batch(vec![Arc::new(StringArray::from(vec![long.as_str(); 10]))]);
        let first = enc.encode(&b).unwrap();
        let second = enc.encode(&b).unwrap();
        assert_eq!(first, second);
        assert!(second.capacity() >= second.len());
        assert_eq!(
            enc.bytes_per_row_hint.load(Ordering::Relaxed) as usize,
            first.len() / 10
        );
    }
}
