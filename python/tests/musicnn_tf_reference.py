"""musicnn's own pipeline, run with TensorFlow, as the reference for test_musicnn.py.

    python musicnn_tf_reference.py OUT.npz MODEL_NAME CLIP.wav ...

For every clip (16 kHz float WAV files the test writes): musicnn's ``extractor.batch_data`` (its
librosa front end and 187-frame patching) and the model built by musicnn's ``models.define_model``
under ``tf.compat.v1``, restored from the checkpoint in musicnn's installed package, run in inference
mode. Writes ``batch_K`` (patches [n, 187, 96]), ``mel_K`` (librosa's float32 power mel [frames, 96],
before musicnn's float16 rounding), ``taggram_K`` (sigmoid of the logits [n, 50]) and ``feature_K``
(musicnn: the penultimate dense_bn output [n, 200]; vgg: pool5 [n, 2, 1, 128]) of musicnn's own
input; and ``batch32_K``, ``taggram32_K``, ``feature32_K`` of the same patches with the log
computed in float32 from librosa's mel (musicnn's batch_data rounds the mel to float16 and computes
log10(10000·x + 1) in float16, which overflows to inf where the mel power reaches 6.55, and the
graph then gives NaN).

Runs in its own process: TensorFlow needs ``TF_USE_LEGACY_KERAS=1`` (tf.compat.v1.layers is only in
the tf-keras package) set before it is imported, and stays out of the test process.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from musicnn import configuration as config  # noqa: E402
from musicnn import extractor, models  # noqa: E402


def main() -> int:
    out, model, clips = sys.argv[1], sys.argv[2], sys.argv[3:]
    labels = config.MSD_LABELS if model.startswith("MSD") else config.MTT_LABELS
    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, 187, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outputs = models.define_model(x, is_training, model, len(labels))
        taggram = tf.nn.sigmoid(outputs[0])
        feature = outputs[-1] if "vgg" in model else outputs[8]
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(sess, os.path.join(os.path.dirname(models.__file__), model, ""))
    result = {}
    for k, clip in enumerate(clips):
        batch, _ = extractor.batch_data(clip, 187, 187)
        audio, sr = librosa.load(clip, sr=config.SR)
        mel = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=config.FFT_HOP, n_fft=config.FFT_SIZE,
                                             n_mels=config.N_MELS).T
        t, f = sess.run([taggram, feature], feed_dict={x: batch, is_training: False})
        result.update({f"batch_{k}": batch, f"mel_{k}": mel, f"taggram_{k}": t, f"feature_{k}": f})
        # the same patches of the log computed in float32 (no float16 rounding, no overflow)
        log32 = np.log10(np.float32(10000) * mel.astype(np.float32) + np.float32(1))
        n = (log32.shape[0] - 187) // 187 + 1
        batch32 = np.stack([log32[i * 187: (i + 1) * 187] for i in range(n)])
        t, f = sess.run([taggram, feature], feed_dict={x: batch32, is_training: False})
        result.update({f"batch32_{k}": batch32, f"taggram32_{k}": t, f"feature32_{k}": f})
    sess.close()
    np.savez(out, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
