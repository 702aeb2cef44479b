#!/usr/bin/env python3
"""Writes FleetWatch's own replay scenarios and their expectations (score_replay.py format).

Expectations follow the table of ../shared/bench-data/replay/README.md (severity and latency per fault
kind), never the detector's output. Re-run after editing: python3 make_scenarios.py
"""
import json
import math
import random

MUST = {  # kind -> (min_severity, within_s, rule)
    "gpu_lost": ("critical", 5, "rule 1: NVML GPU is lost"),
    "ecc_dbe": ("critical", 5, "rule 2: double-bit ECC"),
    "row_remap_failure": ("critical", 10, "rule 11: row-remap failure"),
    "row_remap_pending": ("warning", 60, "rule 12: row remap pending"),
    "retired_pages": ("warning", 60, "rule 15: retired pages >= 63"),
    "nvlink_down": ("critical", 30, "rule 20: NVLink link inactive"),
    "ib_link_down": ("critical", 30, "rule 36/37: IB port not ACTIVE"),
    "node_silent": ("critical", 60, "rule 34 (tightened): agent stopped reporting"),
    "over_temperature": ("warning", 60, "rule 27: at/above the slowdown threshold"),
    "hw_slowdown": ("warning", 120, "rule 25: HW slowdown sustained >= 60 s"),
    "pcie_replay": ("warning", 120, "rule 23: PCIe replay > ceil(1.92 x 16)/min"),
    "ecc_sbe": ("warning", 300, "rule 17: high SBE rate"),
    "ib_errors": ("warning", 120, "rule 38: IB error counter sustained"),
}
XID = {79: "critical", 48: "critical", 64: "critical", 95: "critical", 119: "critical", 120: "critical",
       140: "critical", 74: "high", 149: "high", 94: "warning", 63: "warning", 92: "warning"}
NODE_LEVEL = {"ib_link_down", "ib_errors", "node_silent"}


def expectation(i, f):
    gpu = None if f["kind"] in NODE_LEVEL else f["gpu"]
    base = {"fault_index": i, "node": f["node"], "gpu": gpu, "kind": f["kind"]}
    k = f["kind"]
    if k == "xid":
        if f["xid"] in (13, 31, 43):
            return dict(base, must_detect=False, why="rule 39: a single app-class Xid is INFO")
        sev = XID[f["xid"]]
        rule = "Xid %d" % f["xid"]
        return dict(base, must_detect=True, min_severity=sev, within_s=5, rule=rule)
    if k == "power_cap":
        return dict(base, must_detect=False, why="rule 29: SW power cap is normal under load")
    if k == "hw_slowdown" and f.get("for_s") is not None and f["for_s"] < 60:
        return dict(base, must_detect=False, why="rule 25: HW slowdown shorter than 60 s")
    if k == "ib_errors" and f["counter"] == "port_xmit_wait":
        return dict(base, must_detect=False, why="port_xmit_wait is congestion, not an error")
    if k == "nvlink_errors":
        if f["counter"] in ("crc_flit", "crc_data"):
            if f["per_s"] <= 0.05:
                return dict(base, must_detect=False, why="rule 19: CRC far below 100/s")
            assert f["per_s"] >= 100
        else:
            assert f["per_s"] * 60 >= 1
        return dict(base, must_detect=True, min_severity="high", within_s=90, rule="rules 18/19: NVLink errors")
    sev, within, rule = MUST[k]
    return dict(base, must_detect=True, min_severity=sev, within_s=within, rule=rule)


def write(name, description, scenario):
    exps = [expectation(i, f) for i, f in enumerate(scenario["faults"])]
    must = sum(1 for e in exps if e["must_detect"])
    max_incidents = must + max(2, math.ceil(0.05 * must)) if must else 0
    with open(name + ".json", "w") as fh:
        json.dump(scenario, fh, indent=1)
        fh.write("\n")
    with open(name + ".expect.json", "w") as fh:
        json.dump({"scenario": name + ".json", "description": description, "max_incidents": max_incidents,
                   "false_alarm_window_s": 300, "expectations": exps}, fh, indent=1)
        fh.write("\n")


def many_faults():
    """48 nodes, faults in bursts: up to eight at the same second on different nodes."""
    rnd = random.Random(2026)
    nodes = list(range(48))
    rnd.shuffle(nodes)
    gpu = lambda: rnd.randrange(8)
    menu = [
        lambda: {"kind": "xid", "gpu": gpu(), "xid": rnd.choice(sorted(XID))},
        lambda: {"kind": "xid", "gpu": gpu(), "xid": rnd.choice([13, 31, 43])},
        lambda: {"kind": "gpu_lost", "gpu": gpu()},
        lambda: {"kind": "ecc_dbe", "gpu": gpu()},
        lambda: {"kind": "ecc_sbe", "gpu": gpu(), "per_s": rnd.choice([5, 50]), "for_s": 300},
        lambda: {"kind": "row_remap_failure", "gpu": gpu()},
        lambda: {"kind": "row_remap_pending", "gpu": gpu()},
        lambda: {"kind": "retired_pages", "gpu": gpu(), "count": rnd.choice([63, 80, 120])},
        lambda: {"kind": "over_temperature", "gpu": gpu(), "temp_c": rnd.choice([90, 92, 94]), "for_s": 120},
        lambda: {"kind": "hw_slowdown", "gpu": gpu(), "for_s": rnd.choice([60, 90, 300])},
        lambda: {"kind": "hw_slowdown", "gpu": gpu(), "for_s": rnd.choice([10, 30, 45])},
        lambda: {"kind": "power_cap", "gpu": gpu(), "for_s": 200},
        lambda: {"kind": "nvlink_errors", "gpu": gpu(), "link": rnd.randrange(18), "counter": rnd.choice(["replay", "recovery"]),
                 "per_s": rnd.choice([0.05, 1, 5]), "for_s": 120},
        lambda: {"kind": "nvlink_errors", "gpu": gpu(), "link": rnd.randrange(18), "counter": rnd.choice(["crc_flit", "crc_data"]),
                 "per_s": rnd.choice([120, 500]), "for_s": 150},
        lambda: {"kind": "nvlink_errors", "gpu": gpu(), "link": rnd.randrange(18), "counter": "crc_flit", "per_s": 0.02, "for_s": 400},
        lambda: {"kind": "nvlink_down", "gpu": gpu(), "link": rnd.randrange(18)},
        lambda: {"kind": "ib_link_down", "port": rnd.randrange(8), "for_s": rnd.choice([45, 200])},
        lambda: {"kind": "ib_errors", "port": rnd.randrange(8), "counter": rnd.choice(
            ["symbol_error", "link_error_recovery", "port_rcv_errors", "local_link_integrity_errors"]), "per_s": rnd.choice([2, 20]), "for_s": 200},
        lambda: {"kind": "ib_errors", "port": rnd.randrange(8), "counter": "port_xmit_wait", "per_s": 30000, "for_s": 300},
        lambda: {"kind": "pcie_replay", "gpu": gpu(), "per_s": rnd.choice([1, 3]), "for_s": 200},
        lambda: {"kind": "node_silent", "for_s": rnd.choice([90, 150])},
    ]
    faults = []
    at = 20
    while nodes:
        burst = min(len(nodes), rnd.choice([4, 6, 8]))
        for _ in range(burst):
            f = rnd.choice(menu)()
            f = dict({"at_s": at, "node": nodes.pop()}, **f)
            faults.append(f)
        at += 45
    # Two faults on one node, different GPUs, at the same second.
    faults.append({"at_s": at, "node": faults[0]["node"], "gpu": 7 if faults[0].get("gpu") != 7 else 6, "kind": "xid", "xid": 48})
    ordered = [dict((k, f[k]) for k in ["at_s", "node", "gpu", "kind"] if k in f) | f for f in faults]
    return {"fleet": {"nodes": 48, "gpus_per_node": 8, "nvlinks_per_gpu": 18, "ib_ports_per_node": 8, "tick_s": 1},
            "duration_s": 600, "seed": 21, "faults": ordered}


def quiet():
    """An hour at a 5 s tick with nothing but benign noise: no incident of severity warning or above."""
    faults = []
    for n in range(16):
        at = 60 + n * 180
        g = n % 8
        kinds = [
            {"kind": "power_cap", "gpu": g, "for_s": 3000},
            {"kind": "hw_slowdown", "gpu": g, "for_s": 55},
            {"kind": "hw_slowdown", "gpu": (g + 3) % 8, "for_s": 20},
            {"kind": "nvlink_errors", "gpu": g, "link": n, "counter": "crc_data", "per_s": 0.05, "for_s": 3600},
            {"kind": "nvlink_errors", "gpu": (g + 1) % 8, "link": 17 - n, "counter": "crc_flit", "per_s": 0.01},
            {"kind": "ib_errors", "port": n % 8, "counter": "port_xmit_wait", "per_s": 50000, "for_s": 5000},
            {"kind": "xid", "gpu": g, "xid": [13, 31, 43][n % 3]},
        ]
        for k, f in enumerate(kinds):
            faults.append(dict({"at_s": at + k * 30, "node": n}, **f))
    return {"fleet": {"nodes": 16, "gpus_per_node": 8, "nvlinks_per_gpu": 18, "ib_ports_per_node": 8, "tick_s": 5},
            "duration_s": 3600, "seed": 5, "faults": faults}


write("F01_many_simultaneous", "48 nodes; every fault kind, in bursts of up to eight at the same second on different nodes; two faults on one node.", many_faults())
write("F02_quiet_hour", "16 nodes for an hour at a 5 s tick: power caps, short slowdowns, tiny CRC rates, IB congestion, single app Xids. Nothing may alert.", quiet())
