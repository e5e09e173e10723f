"""An independent NumPy forward pass of musicnn (musicnn 0.1.0's models.build_musicnn, inference
mode) and of its vgg (models.vgg), written from models.py in TensorFlow's layout: the reference for
mulan's MusicnnTower and VggTower. The architecture is the file's (vgg when it has blocks.0.conv.weight).

Usage: musicnn_reference.py WEIGHTS.safetensors IN.f32 N OUT.f32
WEIGHTS holds the tensors under the names of the spec (docs/pretrained-audio.md), in mulan's layout;
they are turned back into TensorFlow's ([out, in, freq, time] -> [time, freq, in, out]) and the graph
is computed as TensorFlow would: input [N, 187 time, 96 freq]. IN.f32 holds N patches in mulan's
layout [N, 96 bands, 187 frames] (float32). Writes [N, 200 + 50] float32 rows to OUT.f32: the
penultimate features (backend.dense_bn's output), then the taggram sigmoid(logits). In float64.
For vgg the rows are [N, 128 + 50]: pool5 averaged over its frames and bands, then the taggram.
"""
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from safetensors.numpy import load_file

EPS = 0.001  # tf.compat.v1.layers.batch_normalization's default epsilon


def bn(w, name, x):
    """Batch norm over the last axis (TF's channels-last), inference mode."""
    g, b = w[name + ".weight"], w[name + ".bias"]
    m, v = w[name + ".running_mean"], w[name + ".running_var"]
    return (x - m) / np.sqrt(v + EPS) * g + b


def relu(x):
    return np.maximum(x, 0)


def conv2d_valid(x, kernel, bias):
    """TF conv2d, padding 'valid': x [N, H, W, C], kernel [kh, kw, C, O]."""
    kh, kw = kernel.shape[0], kernel.shape[1]
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))  # [N, H', W', C, kh, kw]
    return np.einsum("nhwcij,ijco->nhwo", win, kernel, optimize=True) + bias


def tf_kernel(w, name):
    """mulan [out, in, freq, time] -> TF [time, freq, in, out]."""
    return np.transpose(w[name + ".weight"], (3, 2, 1, 0))


def front_block(w, name, x, pad_time):
    """conv (ReLU) -> BN -> max over the whole frequency axis; x [N, T, F, 1]."""
    xp = np.pad(x, [(0, 0), pad_time, (0, 0), (0, 0)])
    y = bn(w, name + ".bn", relu(conv2d_valid(xp, tf_kernel(w, name + ".conv"), w[name + ".conv.bias"])))
    return y.max(axis=2)  # [N, T, filters]


def mid_block(w, name, x):
    """TF: pad time 3+3, conv2d with kernel [7, C, 1, 64] over [N, T+6, C, 1] ('valid'), ReLU, BN."""
    k = w[name + ".conv.weight"]  # [64, C, 7]
    kernel = np.transpose(k, (2, 1, 0))[:, :, None, :]  # [7, C, 1, 64]
    xp = np.pad(x[..., None], [(0, 0), (3, 3), (0, 0), (0, 0)])
    y = conv2d_valid(xp, kernel, w[name + ".conv.bias"])  # [N, T, 1, 64]
    return bn(w, name + ".bn", relu(y))[:, :, 0, :]  # [N, T, 64]


def max_pool_valid(x, pool, strides):
    """TF max_pooling2d, padding 'valid': x [N, H, W, C], pool and strides (H, W)."""
    win = sliding_window_view(x, pool, axis=(1, 2))[:, ::strides[0], ::strides[1]]  # [N, H', W', C, ph, pw]
    return win.max(axis=(4, 5))


def vgg(w, x):
    """models.vgg: 5 × (conv 3x3 'same', ReLU, BN, max pool); x [N, 187 time, 96 freq, 1] after input_bn.
    Returns (feature [N, 128], logits [N, 50])."""
    pools = [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))]  # (time, freq)
    h = x
    for i, (pool, strides) in enumerate(pools):
        name = "blocks.%d" % i
        hp = np.pad(h, [(0, 0), (1, 1), (1, 1), (0, 0)])
        h = bn(w, name + ".bn", relu(conv2d_valid(hp, tf_kernel(w, name + ".conv"), w[name + ".conv.bias"])))
        h = max_pool_valid(h, pool, strides)
    n = h.shape[0]  # pool5 [N, 2 time, 1 freq, 128]
    logits = h.reshape(n, -1) @ w["logits.weight"].T + w["logits.bias"]
    return h.mean(axis=(1, 2)), logits


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    w = {k: v.astype(np.float64) for k, v in load_file(sys.argv[1]).items()}
    n = int(sys.argv[3])
    patches = np.fromfile(sys.argv[2], dtype="<f4").astype(np.float64).reshape(n, 96, 187)
    x = np.transpose(patches, (0, 2, 1))[..., None]  # [N, 187 time, 96 freq, 1]
    x = bn(w, "input_bn", x)
    if "blocks.0.conv.weight" in w:
        feature, logits = vgg(w, x)
        taggram = 1 / (1 + np.exp(-logits))
        np.ascontiguousarray(np.concatenate([feature, taggram], axis=1), dtype="<f4").tofile(sys.argv[4])
        print(n, feature.shape[1] + taggram.shape[1])
        return
    f74 = front_block(w, "timbral.0", x, (3, 3))
    f77 = front_block(w, "timbral.1", x, (3, 3))
    temporal = []
    for i, k in enumerate([128, 64, 32]):  # TF 'same' for an even kernel: (k-1)//2 before, the rest after
        temporal.append(front_block(w, "temporal.%d" % i, x, ((k - 1) // 2, k - 1 - (k - 1) // 2)))
    front = np.concatenate([f74, f77] + temporal, axis=2)  # [N, T, 561]
    m1 = mid_block(w, "midend.0", front)
    m2 = mid_block(w, "midend.1", m1) + m1
    m3 = mid_block(w, "midend.2", m2) + m2
    features = np.concatenate([front, m1, m2, m3], axis=2)  # [N, T, 753]
    pooled = np.stack([features.max(axis=1), features.mean(axis=1)], axis=2).reshape(n, -1)  # flatten [N, 753, 2]
    h = bn(w, "backend.pool_bn", pooled)
    h = relu(h @ w["backend.dense.weight"].T + w["backend.dense.bias"])
    penultimate = bn(w, "backend.dense_bn", h)
    logits = penultimate @ w["backend.logits.weight"].T + w["backend.logits.bias"]
    taggram = 1 / (1 + np.exp(-logits))
    np.ascontiguousarray(np.concatenate([penultimate, taggram], axis=1), dtype="<f4").tofile(sys.argv[4])
    print(n, penultimate.shape[1] + taggram.shape[1])


main()
