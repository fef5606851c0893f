r"""Fashion-MNIST with HADS: the paper's DS-CNN S on 28 x 28 x 1 images.

Pretrains (or loads --checkpoint), computes Taylor importance, solves the
knapsack for 100/75/50/25 % MACs, fine-tunes all subnetworks together,
evaluates, exports and writes the table and plots (see pipeline.py).

    python examples/fashion_mnist.py                       # real data (downloads ~30 MB)
    python examples/fashion_mnist.py --samples_per_class=50 --method=top_down
    python examples/fashion_mnist.py --fake_data --pretrain_epochs=1 --finetune_epochs=1
"""

import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline  # noqa: E402  (examples/pipeline.py)

# The HADS code trains Fashion-MNIST with batches of 32.
pipeline.define_flags(out_dir="/tmp/hads_fashion_mnist", batch_size=32,
                      pretrain_epochs=30, finetune_epochs=30, learning_rate=1e-3)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    pipeline.run_or_exit(_main)


def _main():
    from hads_keras import datasets, models

    pipeline.check_data_dir()
    info = datasets.info("fashion_mnist")
    model = models.get_model("ds_cnn_vision", "s", input_shape=info.input_shape,
                             num_classes=info.num_classes)
    labels = datasets.label_names("fashion_mnist", FLAGS.data_dir, FLAGS.fake_data)
    pipeline.run(model, "fashion_mnist", labels=labels, extra=dict(size="s"))


if __name__ == "__main__":
    app.run(main)
