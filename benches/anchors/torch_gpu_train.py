"""PyTorch's side of `cargo bench --bench gpu`: torchvision's MobileNetV2 (weights=None, one logit),
fp32, trained on the GPU with AdamW and BCE-with-logits on host batches copied to the GPU each step, as
pipe's GPU backend does. cuDNN autotuning on; TF32 as PyTorch's defaults (on for cuDNN convolutions).
Prints one JSON line: train_ips, infer_ips, gpu."""
import argparse
import json
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda")
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2(weights=None, width_mult=args.width, num_classes=1).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    batches = [torch.randn(args.batch, 3, args.size, args.size) for _ in range(4)]
    labels = torch.tensor([i % 2 for i in range(args.batch)], dtype=torch.float32)

    def step(i):
        x = batches[i % len(batches)].to(device)
        y = labels.to(device)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x).squeeze(1), y)
        loss.backward()
        opt.step()
        return loss.item()  # the host reads the loss each step, as pipe does

    net.train()
    for i in range(args.warmup):
        step(i)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for i in range(args.steps):
        step(i)
    torch.cuda.synchronize()
    train_ips = args.steps * args.batch / (time.perf_counter() - started)

    net.eval()
    with torch.no_grad():
        for i in range(5):
            net(batches[i % 4].to(device)).cpu()
        torch.cuda.synchronize()
        started = time.perf_counter()
        for i in range(args.steps // 2):
            net(batches[i % 4].to(device)).cpu()
        torch.cuda.synchronize()
    infer_ips = (args.steps // 2) * args.batch / (time.perf_counter() - started)
    print(json.dumps({"train_ips": train_ips, "infer_ips": infer_ips, "gpu": torch.cuda.get_device_name(0),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
