#!/usr/bin/env python3
"""The strongest PyTorch a user can reach for, timed on the same network and loss as pytorch_reference.py.

Inference: fp16 weights and input, channels_last, torch.compile(mode="max-autotune-no-cudagraphs"),
median of 20 passes after warm-up (the compile happens in the warm-up and is reported apart).
Training: batch 4, 256² crops, torch.autocast(bfloat16) around the style network and VGG16, the
whole step's forward and loss compiled, Adam(fused=True); the same loss as pytorch_reference.py.
`--curve N` also records the loss every 50 iterations of an N-iteration run from a fixed seed on
fixed random batches (compare with `atelier bench`'s training at the same loss).

Runs with the PyTorch the GPU machine ships (needs Triton for max-autotune; nothing is installed).
Usage (from the repo root, after benches/gpu_pack.sh put pytorch_reference.py into .gpu/):
  python3 .gpu/pytorch_compiled.py --vgg models/vgg16-...safetensors [--iters 300] [--sizes 1024x1024,3840x2160]
Prints one JSON object (last line): infer_ms_f16_compiled_<W>x<H>, compile_s_<W>x<H>,
peak_mem_mb_infer_<W>x<H>, train_it_per_s_b4_256_compiled, train_compile_s, and curve (with --curve).
"""
import argparse, json, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch, torch.nn.functional as F
from safetensors.torch import load_file
from pytorch_reference import TransformerNet, vgg_features, gram, median_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vgg', required=True)
    ap.add_argument('--iters', type=int, default=300)
    ap.add_argument('--sizes', default='1024x1024,3840x2160')
    ap.add_argument('--curve', type=int, default=0)
    ap.add_argument('--no-train', action='store_true')
    a = ap.parse_args()
    os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', '/tmp/inductor-cache')
    dev = 'cuda'
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    res = {'torch': torch.__version__, 'gpu': torch.cuda.get_device_name(), 'mode': 'max-autotune-no-cudagraphs'}
    try:
        import triton
        res['triton'] = triton.__version__
    except ImportError:
        pass

    # Inference: a fresh compiled module per size, so each size's compile wait is its own.
    net = TransformerNet().to(dev).eval().half().to(memory_format=torch.channels_last)
    for size in a.sizes.split(','):
        w, h = (int(v) for v in size.split('x'))
        xi = (torch.rand(1, 3, h, w, device=dev) * 255).half().to(memory_format=torch.channels_last)
        torch._dynamo.reset()
        fn = torch.compile(net, mode='max-autotune-no-cudagraphs', dynamic=False)
        with torch.no_grad():
            t = time.time(); fn(xi); torch.cuda.synchronize()
            res[f'compile_s_{w}x{h}'] = round(time.time() - t, 1)
            torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
            res[f'infer_ms_f16_compiled_{w}x{h}'] = median_ms(lambda: fn(xi))
            res[f'peak_mem_mb_infer_{w}x{h}'] = (torch.cuda.max_memory_allocated() - base) / 2**20
        print(json.dumps(res), flush=True)
    if a.no_train:
        print(json.dumps(res)); return

    # Training: the loss of pytorch_reference.py under bf16 autocast, compiled; fused Adam.
    torch._dynamo.reset(); torch.manual_seed(0)
    net = TransformerNet().to(dev).to(memory_format=torch.channels_last)
    W = {k: v.float().to(dev) for k, v in load_file(a.vgg).items()}
    opt = torch.optim.Adam(net.parameters(), 1e-3, fused=True)
    gs = [gram(f).detach() for f in vgg_features(W, torch.rand(1, 3, 512, 512, device=dev) * 255)]

    def loss_fn(x):
        with torch.autocast('cuda', dtype=torch.bfloat16):
            y = net(x); fy = vgg_features(W, y)
            with torch.no_grad():
                fx = vgg_features(W, x)
            # The Grams and MSEs in f32, as autocast does for reductions it knows; Gram by hand.
            c = F.mse_loss(fy[1].float(), fx[1].float())
            s = sum(F.mse_loss(gram(f.float()), g.expand(x.shape[0], -1, -1)) for f, g in zip(fy, gs))
        return 1e5 * c + 3e6 * s

    cl = torch.compile(loss_fn)

    def step(x):
        loss = cl(x)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return loss

    x = (torch.rand(4, 3, 256, 256, device=dev) * 255).to(memory_format=torch.channels_last)
    t = time.time(); step(x); torch.cuda.synchronize(); res['train_compile_s'] = round(time.time() - t, 1)
    for _ in range(20): step(x)
    torch.cuda.synchronize(); t = time.time()
    for _ in range(a.iters): step(x)
    torch.cuda.synchronize(); res['train_it_per_s_b4_256_compiled'] = a.iters / (time.time() - t)
    if a.curve:
        g = torch.Generator(device=dev).manual_seed(42)
        curve = []
        for it in range(1, a.curve + 1):
            xb = (torch.rand(4, 3, 256, 256, device=dev, generator=g) * 255).to(memory_format=torch.channels_last)
            l = step(xb)
            if it % 50 == 0: curve.append((it, round(l.item(), 1)))
        res['curve'] = curve
    print(json.dumps(res))


if __name__ == '__main__':
    main()
