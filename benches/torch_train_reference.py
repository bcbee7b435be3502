#!/usr/bin/env python3
"""The training recipe of `atelier train` in PyTorch, for side-by-side quality checks on the GPU machine.

Uses ../shared/bench/pytorch_reference.py (copied into .gpu/ by benches/gpu_pack.sh) for the network and loss.
Usage (from the repo root, on the GPU machine): python3 .gpu/torch_train_reference.py STYLE_WEIGHT ITERS OUT.png
Prints content and style loss at a few iterations and writes the astronaut example stylised by the result.
"""
import sys, json, glob, random, time
sys.path.insert(0, '.gpu')
import torch, torch.nn.functional as F
from pytorch_reference import TransformerNet, vgg_features, gram
from safetensors.torch import load_file
def load(p):
    try:
        import torchvision.io as io
        return io.read_image(p, mode=io.ImageReadMode.RGB).float()
    except Exception as e:
        from PIL import Image; import numpy as np
        return torch.from_numpy(np.asarray(Image.open(p).convert('RGB'))).permute(2,0,1).float()
dev='cuda'; torch.manual_seed(42); random.seed(42)
W={k:v.float().to(dev) for k,v in load_file('models/vgg16-imagenet-keras-conv1_1-conv5_3.f16.safetensors').items()}
files=sorted(glob.glob('.gpu/train/*.jpg'))
imgs=[F.interpolate(load(f)[None],size=(256,256),mode='bilinear',align_corners=False)[0] for f in files]
style=load('.gpu/styles/starry_night.jpg')[None].to(dev)
gs=[gram(f).detach() for f in vgg_features(W, style)]
net=TransformerNet().to(dev); opt=torch.optim.Adam(net.parameters(),1e-3)
cw,sw=1e5,float(sys.argv[1]) if len(sys.argv)>1 else 2e6
iters=int(sys.argv[2]) if len(sys.argv)>2 else 1000
log=[]
for it in range(1,iters+1):
    x=torch.stack([imgs[random.randrange(len(imgs))] for _ in range(4)]).to(dev)
    y=net(x); fy=vgg_features(W,y)
    with torch.no_grad(): fx=vgg_features(W,x)
    c=cw*F.mse_loss(fy[1],fx[1]); s=sw*sum(F.mse_loss(gram(f),g.expand(4,-1,-1)) for f,g in zip(fy,gs))
    opt.zero_grad(); (c+s).backward(); opt.step()
    if it in (1,100,250,500,1000,2000,3000): log.append((it,c.item(),s.item())); print(it, '%.3e %.3e'%(c.item(), s.item()), flush=True)
net.eval()
with torch.no_grad():
    a=load('assets/examples/astronaut.png')[None].to(dev)
    out=net(a).clamp(0,255)[0].byte().cpu()
try:
    import torchvision.io as io; io.write_png(out, sys.argv[3] if len(sys.argv)>3 else '/tmp/o.png')
except Exception:
    from PIL import Image; Image.fromarray(out.permute(1,2,0).numpy()).save(sys.argv[3])
