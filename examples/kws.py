r"""Keyword spotting on Google Speech Commands v0.02 with HADS.

The Hello Edge networks (DNN, CNN, DS-CNN; sizes S and L) on 49 x 10 MFCC
features (25 x 10 for the DNN, as in Hello Edge), 12 classes: 10 keywords,
silence, unknown. Pretrains (or loads --checkpoint), computes Taylor
importance, solves the knapsack for 100/75/50/25 % MACs, fine-tunes all
subnetworks together, evaluates, exports and writes the table and plots.

    python examples/kws.py --model=ds_cnn --size=s               # real data (downloads ~2.4 GB)
    python examples/kws.py --model=cnn --size=l --method=top_down
    python examples/kws.py --fake_data --pretrain_epochs=1 --finetune_epochs=1  # offline smoke run
"""

import sys
import os

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline  # noqa: E402  (examples/pipeline.py)

flags.DEFINE_enum("model", "ds_cnn", ["dnn", "cnn", "ds_cnn"], "Hello Edge architecture.")
flags.DEFINE_enum("size", "s", ["s", "l"], "Model size.")
flags.DEFINE_float("unknown_share", 0.1,
                   "Share of _unknown_ clips in training (Hello Edge: 10 %; TFDS "
                   "files every other word there, over half the split). "
                   "0 keeps all of them.", lower_bound=0.0, upper_bound=0.9)
pipeline.define_flags(out_dir="/tmp/hads_kws", batch_size=100, pretrain_epochs=30,
                      finetune_epochs=30, learning_rate=5e-4)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    pipeline.run_or_exit(_main)


def _main():
    from hads_keras import datasets, models

    # Hello Edge's DNN reads MFCCs every 40 ms (25 frames); the others 20 ms.
    stride = 40 if FLAGS.model == "dnn" else 20
    shape = datasets.info("speech_commands", window_stride_ms=stride).input_shape
    model = models.get_model(FLAGS.model, FLAGS.size, input_shape=shape,
                             num_classes=12)
    pipeline.check_data_dir()
    labels = datasets.label_names("speech_commands", FLAGS.data_dir, FLAGS.fake_data)
    share = FLAGS.unknown_share or None
    pipeline.run(model, "speech_commands", labels=labels, window_stride_ms=stride,
                 extra=dict(size=FLAGS.size, mfcc_stride_ms=stride, unknown_share=share),
                 train_options=dict(unknown_share=share))


if __name__ == "__main__":
    app.run(main)
