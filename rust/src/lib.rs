//! `bulkops._native`: the PyO3 layer over the plain-Rust JSONL encoder.
//!
//! Bindings only convert arguments, release the GIL and map errors; the work
//! is in the private core modules, which are unit-tested with `cargo test`.
#![deny(unsafe_code)]

mod escape;
mod floatfmt;
mod globalid;
mod jsonl;
mod sink;
mod timefmt;

use arrow_buffer::Buffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_arrow::buffer::PyArrowBuffer;
use pyo3_arrow::PyRecordBatch;

pub use jsonl::{EncodeError, FieldKind, FieldSpec, JsonlEncoder, SpecError};

/// Encodes Arrow record batches as JSON Lines (see `_native.pyi`).
#[pyclass(frozen, module = "bulkops._native", name = "JsonlEncoder")]
struct PyJsonlEncoder {
    inner: JsonlEncoder,
}

#[pymethods]
impl PyJsonlEncoder {
    #[new]
    fn new(fields: Vec<(String, String, Option<String>)>) -> PyResult<Self> {
        let specs = fields
            .iter()
            .map(|(name, kind, extra)| FieldSpec::parse(name, kind, extra.as_deref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Self {
            inner: JsonlEncoder::new(specs),
        })
    }

    #[getter]
    fn fields(&self) -> Vec<(String, &'static str, Option<String>)> {
        self.inner
            .fields()
            .map(|f| (f.name.clone(), f.kind.name(), f.type_name.clone()))
            .collect()
    }

    fn encode<'py>(&self, py: Python<'py>, batch: PyRecordBatch) -> PyResult<Bound<'py, PyBytes>> {
        let batch = batch.into_inner();
        let jsonl = py
            .detach(|| self.inner.encode(&batch))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyBytes::new(py, &jsonl))
    }

    /// Like `encode`, without copying the output: the returned buffer owns it.
    fn encode_buffer(&self, py: Python<'_>, batch: PyRecordBatch) -> PyResult<PyArrowBuffer> {
        let batch = batch.into_inner();
        let jsonl = py
            .detach(|| self.inner.encode(&batch))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyArrowBuffer::new(Buffer::from_vec(jsonl)))
    }

    fn __repr__(&self) -> String {
        let names: Vec<String> = self
            .inner
            .fields()
            .map(|f| format!("{:?}", f.name))
            .collect();
        format!("JsonlEncoder([{}])", names.join(", "))
    }
}

/// Relay global id: base64 of `"{type_name}:{id}"`.
#[pyfunction]
#[pyo3(signature = (type_name, id, /))]
fn global_id(type_name: &str, id: i64) -> String {
    globalid::global_id(type_name, id)
}

/// Version of the native extension.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyJsonlEncoder>()?;
    m.add_class::<PyArrowBuffer>()?;
    m.add_function(wrap_pyfunction!(global_id, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
