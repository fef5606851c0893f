"""The L1 baseline before and after BN folding, on the demo's model.

`hads_keras.l1_importance` ranks units by the L1 norm of the BN-folded
kernel (`|gamma| / sqrt(var + eps) * sum |W|`); `fold_batch_norm=False`
ranks raw kernels, which are scale-free before BatchNormalization (the
former default). This trains the demo's network once (`hads demo`'s
settings and seed), solves the nested knapsack with both L1 scores, and
recalibrates BN and fine-tunes each plan as the demo does, so the two
rankings are compared on the same trained weights. Prints the table and
writes benchmarks/results/l1_baseline.json.

    python benchmarks/l1_baseline.py [--seed 0] [--epochs 30]
                                     [--finetune-epochs 15]
"""

import argparse
import json
import os
import pathlib


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent
                                             / "results" / "l1_baseline.json"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import hads_keras as hads
    from hads_keras import demo

    keras.utils.set_random_seed(args.seed)
    x_train, x_test, y_train, y_test = demo.load_digits_split()
    model = demo.build_model("ds_cnn")
    demo._compile(model, 3e-3)
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)
    result = {"seed": args.seed, "epochs": args.epochs,
              "finetune_epochs": args.finetune_epochs,
              "full_network_accuracy": float(model.evaluate(x_test, y_test, verbose=0)[1]),
              "variants": {}}
    for label, fold in (("raw kernel (former)", False), ("BN-folded (default)", True)):
        plan = hads.solve(model, hads.l1_importance(model, fold_batch_norm=fold),
                          mac_targets=demo.MAC_TARGETS)
        keras.utils.set_random_seed(args.seed)
        nested = hads.apply(model, plan, calibration_data=x_train)
        demo._compile(nested, 1e-3)
        if args.finetune_epochs:
            nested.fit(x_train, y_train, epochs=args.finetune_epochs,
                       batch_size=32, verbose=0)
        after = nested.evaluate(x_test, y_test, verbose=0, return_dict=True)
        result["variants"][label] = {
            "widths": {g: list(plan.widths(g)) for g in plan.groups},
            "macs": [c["macs"] for c in plan.costs],
            "accuracy": [after[f"sub{k}_accuracy"]
                         for k in range(plan.num_subnetworks)]}
    lines = [f"L1 baseline, demo ds_cnn, seed {args.seed}, "
             f"{args.finetune_epochs} fine-tuning epochs (full network "
             f"{100 * result['full_network_accuracy']:.2f} %)"]
    for label, r in result["variants"].items():
        accuracies = " / ".join(f"{100 * a:.2f}" for a in r["accuracy"])
        lines.append(f"  {label:20s} accuracy at 100/75/50/25 % MACs: {accuracies} %;"
                     f" conv1 widths {r['widths']['conv1']}")
    print("\n".join(lines))
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
