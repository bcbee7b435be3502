#!/usr/bin/env python3
"""CPU baseline for the instant-style network: onnxruntime running Magenta's arbitrary-style
ONNX graphs (../shared/models/magenta-arbitrary), both the published int8 QDQ form and the
float form Atelier computes (weights dequantised once, activation Q/DQ pairs dropped).

    pip install onnx onnxruntime numpy      # what this script needs (nothing else)
    python3 benches/instant_onnxruntime.py [--sizes 1024,3840x2160] [--runs 3] [--threads 2]

Prints the median time of the predictor (256²) and of the transformer at each size, in ms,
to compare with `atelier bench --variant arbitrary --device cpu` run right before or after.
"""
import argparse, os, statistics, time
import numpy as np
import onnx
from onnx import helper, numpy_helper
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "..", "..", "shared", "models", "magenta-arbitrary")


def float_form(model):
    """Dequantise constant weights once and pass activations through their Q/DQ pairs."""
    g = model.graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    rename, folded, keep = {}, {}, []
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in init:
            q = init[n.input[0]].astype(np.float32)
            s = init[n.input[1]]
            z = init[n.input[2]].astype(np.float32) if len(n.input) > 2 else np.float32(0)
            axis = {a.name: a.i for a in n.attribute}.get("axis", 1)
            if s.ndim == 1 and q.ndim > 1 and s.size > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                s = s.reshape(shape)
                z = z.reshape(shape) if np.ndim(z) == 1 and z.size > 1 else z
            folded[n.output[0]] = ((q - z) * s).astype(np.float32)
        elif n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            rename[n.output[0]] = n.input[0]
        else:
            keep.append(n)

    def resolve(x):
        while x in rename:
            x = rename[x]
        return x

    for n in keep:
        for i, x in enumerate(n.input):
            n.input[i] = resolve(x)
    for o in g.output:
        if resolve(o.name) != o.name:
            keep.append(helper.make_node("Identity", [resolve(o.name)], [o.name]))
    used = {i for n in keep for i in n.input}
    inits = [numpy_helper.from_array(v, k) for k, v in folded.items() if k in used]
    inits += [i for i in g.initializer if i.name in used and i.name not in folded]
    m = helper.make_model(helper.make_graph(keep, g.name, g.input, g.output, inits),
                          opset_imports=model.opset_import)
    m.ir_version = model.ir_version
    return m


def any_size(model):
    """The transformer graph declares 384×384; nothing in it depends on that."""
    d = model.graph.input[0].type.tensor_type.shape.dim
    d[1].dim_param, d[2].dim_param = "H", "W"
    for o in model.graph.output:
        od = o.type.tensor_type.shape.dim
        od[1].dim_param, od[2].dim_param = "OH", "OW"
    return model


def session(model, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def median_ms(f, runs):
    f()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=DEFAULT_DIR)
    ap.add_argument("--sizes", default="1024,3840x2160")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    print(f"onnxruntime {ort.__version__}, {a.threads} threads")
    for form in ("int8", "float"):
        pred = onnx.load(os.path.join(a.dir, "arbitrary_predict.onnx"))
        tran = any_size(onnx.load(os.path.join(a.dir, "arbitrary_transform.onnx")))
        if form == "float":
            pred, tran = float_form(pred), any_size(float_form(tran))
        p, t = session(pred, a.threads), session(tran, a.threads)
        painting = np.random.rand(1, 256, 256, 3).astype(np.float32)
        ms = median_ms(lambda: p.run(None, {p.get_inputs()[0].name: painting}), a.runs)
        print(f"{form}: style predictor (256²): {ms:.1f} ms")
        vector = p.run(None, {p.get_inputs()[0].name: painting})[0].reshape(1, 1, 1, 100)
        for s in a.sizes.split(","):
            w, h = (int(v) for v in s.split("x")) if "x" in s else (int(s), int(s))
            photo = np.random.rand(1, h, w, 3).astype(np.float32)
            feed = {t.get_inputs()[0].name: photo, t.get_inputs()[1].name: vector}
            ms = median_ms(lambda: t.run(None, feed), a.runs)
            print(f"{form}: style transformer {w}x{h}: {ms:.1f} ms (median of {a.runs})")


if __name__ == "__main__":
    main()
