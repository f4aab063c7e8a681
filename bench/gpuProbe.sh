#!/usr/bin/env bash
# Run as a trial's agent (`-a command --agent-command "bash /opt/ptb/bench/gpuProbe.sh"`): prints what
# the agent sees of the GPUs from inside its sandbox. Used by bench/gpuDemo.sh.
echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}"
echo "devices: $(ls /dev | grep nvidia | tr '\n' ' ')"
nvidia-smi -L 2>&1 || echo "nvidia-smi: not usable inside"
python3 - <<'PY'
import torch
n = torch.cuda.device_count()
print("torch sees", n, "GPU(s):", [torch.cuda.get_device_name(i) for i in range(n)])
PY
