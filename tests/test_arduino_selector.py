"""`SubnetworkSelector::selectForLatency` on the host build.

The board-independent half of the Arduino library (arduino/src/
hads_subnetworks.cpp) is compiled with the host's g++ (-Wall -Wextra
-Werror) together with the cost table that `write_sketch` writes into
hads_model.h for a plan with latency, and hand-written tables in cycles,
instructions and without latency. The choices at budgets around every
subnetwork's latency are compared with the rule written out in Python.
"""

import math
import re
import shutil
import subprocess

import pytest

from hads_keras.export import arduino

import test_arduino_sketch as models

GXX = shutil.which("g++")
pytestmark = pytest.mark.skipif(GXX is None, reason="g++ not installed")

LATENCY_US = [41.2, 23.0, 9.01]   # per subnetwork; rounded up on the device
CYCLES = [64000, 32001, 6400]     # at 64 MHz: 1000, 500.02, 100 us
CLOCK_HZ = 64000000

MAIN = r"""
#include <cstdio>
#include "hads_subnetworks.h"
%(table)s
using hads::LatencyUnit;
using hads::Result;

const hads::SubnetworkCost kCycleCosts[] = {
    {300u, 30u, %(c0)du}, {200u, 20u, %(c1)du}, {100u, 10u, %(c2)du}};
const hads::CostTable kCycles = {3, kCycleCosts, LatencyUnit::kCycles};
const hads::CostTable kInstructions = {3, kCycleCosts, LatencyUnit::kInstructions};
const hads::CostTable kNoLatency = {3, kCycleCosts, LatencyUnit::kNone};
const hads::CostTable kBadUnit = {3, kCycleCosts, static_cast<LatencyUnit>(9)};

void choose(hads::SubnetworkSelector& selector, const char* tag,
            unsigned budget, unsigned clock_hz) {
  const Result r = selector.selectForLatency(budget, clock_hz);
  std::printf("%%s %%u %%d %%d\n", tag, budget, static_cast<int>(r),
              selector.current());
}

int main() {
  int32_t slot = -1;
  hads::SubnetworkSelector selector;
  std::printf("not_started %%d\n",
              static_cast<int>(selector.selectForLatency(1000u)));
  const Result started = selector.begin(g_hads_cost_table, &slot);
  std::printf("begin %%d unit %%d\n", static_cast<int>(started),
              static_cast<int>(selector.latencyUnit()));
  for (int k = 0; k < selector.count(); ++k) {
    std::printf("latency %%d %%u\n", k, selector.latency(k));
  }
  for (int k = 0; k < selector.count(); ++k) {
    const unsigned l = selector.latency(k);
    choose(selector, "us", l - 1, 0);
    choose(selector, "us", l, 0);
    choose(selector, "us", l + 1, 0);
  }
  std::printf("slot %%d\n", slot);
  selector.begin(kCycles, &slot);
  const unsigned budgets[] = {99u, 100u, 500u, 501u, 999u, 1000u};
  for (unsigned budget : budgets) choose(selector, "cycles", budget, %(clock)du);
  choose(selector, "cycles_no_clock", 1000000u, 0);
  selector.begin(kInstructions, &slot);
  choose(selector, "instructions", 1000000u, %(clock)du);
  selector.begin(kNoLatency, &slot);
  choose(selector, "none", 1000000u, %(clock)du);
  std::printf("bad_unit %%d\n",
              static_cast<int>(selector.begin(kBadUnit, &slot)));
  std::printf("no_latency_text %%s\n", hads::ResultString(Result::kNoLatency));
  return 0;
}
"""

OK, NOT_STARTED, BAD_TABLE, NO_FIT, NO_LATENCY = 0, 1, 2, 4, 10


def _plan(latency, unit="us"):
    return {"costs": [{"macs": m, "params": p, "latency": l}
                      for (m, p), l in zip(models.dnn_costs(), latency)],
            "info": {"latency": {"target": "host-litert", "unit": unit}}}


def _exported_table(header):
    """The cost table lines write_sketch wrote (the rest needs TFLite Micro)."""
    start = header.index("#define HADS_MODEL_HAS_LATENCY")
    end = header.index(";", header.index("g_hads_cost_table")) + 1
    return header[start:end]


def _expected(latency, budget, scale=1):
    """Index of the first (largest) subnetwork within the budget, or None."""
    return next((k for k, l in enumerate(latency) if l * scale <= budget), None)


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    work = tmp_path_factory.mktemp("selector")
    arduino.write_sketch(models.build_nested_dnn(), work / "Sketch", plan=_plan(LATENCY_US))
    header = (work / "Sketch" / arduino.MODEL_HEADER).read_text()
    main = work / "main.cpp"
    main.write_text(MAIN % {"table": _exported_table(header), "clock": CLOCK_HZ,
                            "c0": CYCLES[0], "c1": CYCLES[1], "c2": CYCLES[2]})
    src = arduino.LIBRARY_DIR / "src"
    binary = work / "selector"
    cmd = [GXX, "-std=c++11", "-Wall", "-Wextra", "-Werror", f"-I{src}",
           str(src / "hads_subnetworks.cpp"), str(main), "-o", str(binary)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def _rows(lines, tag):
    return [tuple(int(v) for v in l.split()[1:]) for l in lines if l.split()[0] == tag]


def test_the_exported_latency_is_rounded_up_and_in_microseconds(output):
    assert output[0] == f"not_started {NOT_STARTED}"
    assert output[1] == f"begin {OK} unit 1"   # LatencyUnit::kMicroseconds
    assert _rows(output, "latency") == [(k, math.ceil(l)) for k, l in enumerate(LATENCY_US)]


def test_select_for_latency_picks_the_largest_subnetwork_that_fits(output):
    device = [math.ceil(l) for l in LATENCY_US]
    rows = _rows(output, "us")
    assert len(rows) == 3 * len(device)
    current = 0
    for budget, status, chosen in rows:
        expected = _expected(device, budget)
        if expected is None:   # kNoFit leaves the selection as it was
            assert (status, chosen) == (NO_FIT, current), budget
        else:
            assert (status, chosen) == (OK, expected), budget
            current = expected
    # Exactly at a subnetwork's latency it is chosen; one us less is too little.
    assert (device[1], OK, 1) in rows and (device[1] - 1, OK, 2) in rows
    assert (device[2] - 1, NO_FIT, 1) in rows   # unchanged after kNoFit
    assert f"slot {rows[-1][2]}" in output   # written into the model's input


def test_a_table_in_cycles_is_converted_with_the_clock(output):
    for budget, status, chosen in _rows(output, "cycles"):
        expected = _expected(CYCLES, budget * CLOCK_HZ, scale=1000000)
        assert (status, chosen) == ((OK, expected) if expected is not None
                                    else (NO_FIT, 0)), budget
    # 32001 cycles at 64 MHz are 500.02 us: 500 us is not enough, 501 is.
    assert (500, OK, 2) in _rows(output, "cycles")
    assert (501, OK, 1) in _rows(output, "cycles")


def test_tables_without_a_time_unit_are_refused(output):
    assert _rows(output, "cycles_no_clock") == [(1000000, NO_LATENCY, 0)]
    assert _rows(output, "instructions") == [(1000000, NO_LATENCY, 0)]
    assert _rows(output, "none") == [(1000000, NO_LATENCY, 0)]
    assert output[-2] == f"bad_unit {BAD_TABLE}"
    assert "no latency in a time unit" in output[-1]


def test_the_header_refuses_a_latency_it_cannot_hold(tmp_path):
    model = models.build_nested_dnn()
    with pytest.raises(ValueError, match="unit 'ms'.*one of"):
        arduino.model_header(model, plan=_plan(LATENCY_US, unit="ms"))
    with pytest.raises(ValueError, match="subnetwork 2: latency -1.0 us"):
        arduino.model_header(model, plan=_plan([3.0, 2.0, -1.0]))
    with pytest.raises(ValueError, match="subnetwork 0: latency .* uint32"):
        arduino.model_header(model, plan=_plan([2.0 ** 33, 2.0, 1.0]))
    header = arduino.model_header(model)   # no latency: the unit says so
    assert "#define HADS_MODEL_HAS_LATENCY 0" in header
    assert "g_hads_cost_table = {3, g_hads_costs, hads::LatencyUnit::kNone};" in header
