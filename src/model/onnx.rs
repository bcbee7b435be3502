//! Just enough of ONNX to read the weights out of a graph: the protobuf messages (declared
//! with `prost`'s derive, so no `protoc` is needed to build), initializers as f32, and
//! `DequantizeLinear` folded into them.
//!
//! Only what the importers read is declared; prost skips every other field.

use crate::{Error, Result};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// The largest ONNX file an importer reads; the Magenta networks are 0.4 and 2.6 MB.
const MAX_ONNX_BYTES: u64 = 256 << 20;

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

// ONNX TensorProto.DataType values the importers meet.
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;
const INT64: i32 = 7;

/// A constant of the graph, widened to f32 (int8 weights and their zero points are exact in f32).
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

impl Constant {
    fn from_proto(t: &TensorProto) -> std::result::Result<Self, String> {
        let dims = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let count: usize = dims.iter().product();
        let raw = &t.raw_data;
        let data: Vec<f32> = match t.data_type {
            FLOAT if !raw.is_empty() => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            FLOAT => t.float_data.clone(),
            INT8 if !raw.is_empty() => raw.iter().map(|&b| b as i8 as f32).collect(),
            UINT8 if !raw.is_empty() => raw.iter().map(|&b| b as f32).collect(),
            INT8 | UINT8 | INT32 if raw.is_empty() => {
                t.int32_data.iter().map(|&v| v as f32).collect()
            }
            INT32 => raw
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
            INT64 if !raw.is_empty() => raw
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            INT64 => t.int64_data.iter().map(|&v| v as f32).collect(),
            other => return Err(format!("data type {other} is not read by the importer")),
        };
        if data.len() != count {
            return Err(format!(
                "holds {} values for shape {dims:?} ({count} expected)",
                data.len()
            ));
        }
        Ok(Self { dims, data })
    }
}

/// A parsed graph with its constants, dequantised weights folded in.
pub struct OnnxGraph {
    pub graph: GraphProto,
    /// Initializers by name, and every `DequantizeLinear` of an initializer by its output name.
    constants: HashMap<String, Constant>,
    origin: String,
}

impl OnnxGraph {
    pub fn read(path: &Path) -> Result<Self> {
        let origin = path.display().to_string();
        let bad = |why: String| Error::model(path, why);
        let file = crate::fsutil::open_regular(path).map_err(|e| bad(e.to_string()))?;
        let len = file.metadata().map_err(|e| bad(e.to_string()))?.len();
        if len > MAX_ONNX_BYTES {
            return Err(bad(format!(
                "{len} bytes is far larger than the networks this importer reads"
            )));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| bad(e.to_string()))?;
        let model = ModelProto::decode(bytes.as_slice())
            .map_err(|e| bad(format!("not an ONNX model ({e})")))?;
        let graph = model
            .graph
            .ok_or_else(|| bad("an ONNX model without a graph".into()))?;
        let mut constants = HashMap::new();
        for t in &graph.initializer {
            let c = Constant::from_proto(t).map_err(|e| bad(format!("tensor '{}' {e}", t.name)))?;
            constants.insert(t.name.clone(), c);
        }
        let mut g = Self {
            graph,
            constants,
            origin,
        };
        g.fold_dequantize().map_err(bad)?;
        Ok(g)
    }

    /// `y = (x - zero_point) · scale`, per tensor or along `axis`, done once for constant `x`:
    /// the float form of a QDQ graph that Magenta's conformance vectors are computed from.
    fn fold_dequantize(&mut self) -> std::result::Result<(), String> {
        let mut folded = Vec::new();
        for n in &self.graph.node {
            if n.op_type != "DequantizeLinear" {
                continue;
            }
            let Some(x) = n.input.first().and_then(|i| self.constants.get(i)) else {
                continue;
            };
            let scale = n
                .input
                .get(1)
                .and_then(|i| self.constants.get(i))
                .ok_or_else(|| format!("'{}' has no constant scale", n.name))?;
            let zero = n.input.get(2).and_then(|i| self.constants.get(i));
            let axis = n
                .attribute
                .iter()
                .find(|a| a.name == "axis")
                .map_or(1, |a| a.i);
            let y = dequantize(x, scale, zero, axis).map_err(|e| format!("'{}': {e}", n.name))?;
            folded.push((n.output[0].clone(), y));
        }
        self.constants.extend(folded);
        Ok(())
    }

    /// The constant behind a node input, looking through `DequantizeLinear`.
    pub fn constant(&self, name: &str) -> Option<&Constant> {
        self.constants.get(name)
    }

    pub fn nodes<'a>(&'a self, op_type: &'a str) -> impl Iterator<Item = &'a NodeProto> + 'a {
        self.graph.node.iter().filter(move |n| n.op_type == op_type)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
}

fn dequantize(
    x: &Constant,
    scale: &Constant,
    zero: Option<&Constant>,
    axis: i64,
) -> std::result::Result<Constant, String> {
    let rank = x.dims.len() as i64;
    let per_channel = scale.data.len() > 1;
    let (channels, inner) = if per_channel {
        let axis = if axis < 0 { axis + rank } else { axis };
        let a = usize::try_from(axis)
            .ok()
            .filter(|&a| a < x.dims.len())
            .ok_or_else(|| format!("axis {axis} outside a rank-{rank} tensor"))?;
        if x.dims[a] != scale.data.len() {
            return Err(format!(
                "{} scales for {} channels",
                scale.data.len(),
                x.dims[a]
            ));
        }
        (x.dims[a], x.dims[a + 1..].iter().product::<usize>())
    } else {
        (1, x.data.len())
    };
    let zero_at = |c: usize| zero.map_or(0.0, |z| z.data[if z.data.len() > 1 { c } else { 0 }]);
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let c = if per_channel {
                (i / inner) % channels
            } else {
                0
            };
            (q - zero_at(c)) * scale.data[c]
        })
        .collect();
    Ok(Constant {
        dims: x.dims.clone(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_dequantisation_follows_the_axis() {
        let x = Constant {
            dims: vec![2, 3],
            data: vec![1., 2., 3., -1., -2., -3.],
        };
        let scale = Constant {
            dims: vec![2],
            data: vec![0.5, 2.0],
        };
        let zero = Constant {
            dims: vec![2],
            data: vec![1.0, 0.0],
        };
        let y = dequantize(&x, &scale, Some(&zero), 0).unwrap();
        assert_eq!(y.data, vec![0.0, 0.5, 1.0, -2.0, -4.0, -6.0]);
        assert!(dequantize(&x, &scale, None, 1).is_err());
    }

    #[test]
    fn int8_raw_data_is_signed() {
        let t = TensorProto {
            dims: vec![3],
            data_type: INT8,
            raw_data: vec![0xff, 0x80, 0x7f],
            ..Default::default()
        };
        assert_eq!(
            Constant::from_proto(&t).unwrap().data,
            vec![-1.0, -128.0, 127.0]
        );
    }

    #[test]
    fn garbage_is_not_a_model() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.onnx");
        std::fs::write(&p, b"\xff\xff\xff\xff not protobuf").unwrap();
        let e = OnnxGraph::read(&p).err().expect("refused").to_string();
        assert!(e.contains("ONNX"), "{e}");
    }
}
