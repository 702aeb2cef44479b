#!/usr/bin/env python3
"""Writes FleetWatch's own nasty xid captures and their expected events (run from this folder).

The expected events come from what this script chose to write, line by line, following the conventions of
shared/bench-data/xid/README.md. They are not produced by the C# parser, so grading the parser against them
with score_xid.py is a real check. Deterministic (fixed seed); re-running rewrites identical files.

N01_eras_hosts   other driver eras and hosts: r3xx Xids without PCI: or pid, 8-hex GB200 domains with
                 upper digits, journalctl short-monotonic, dmesg -x, RFC 5424 syslog, ISO without fraction,
                 single-digit days, kmsg '+' flags and several header fields, and NVRM decoys that are not events
N02_damage       mixed CRLF/LF, every cut of an Xid, SXid and UUID line, invalid UTF-8 of several kinds, NULs,
                 a line broken in two, two lines glued (the first cut), blank lines, a 20 KB noise line and a 12 KB Xid line, a cut last line
                 without a newline

<name>.malformed.txt holds how many lines of the capture are event lines cut before their number or UUID
(the verb's "lines skipped as malformed").
"""
import json
import random

rng = random.Random(20261129)


def obj(kind, pci, xid=None, pid=None, process=None, message="", seq=None, uptime=None, uuid=None):
    if kind == "gpu_uuid":
        return {"kind": kind, "pci": pci, "uuid": uuid, "seq": seq, "uptime_us": uptime}
    return {"kind": kind, "pci": pci, "xid": xid, "pid": pid, "process": process, "message": message,
            "seq": seq, "uptime_us": uptime}


def xid_text(pci_text, number, msg, pid=None, name=None):
    fields = ""
    if pid is not None:
        fields += "pid=%s, " % pid
    if name is not None:
        fields += "name=%s, " % name
    return "NVRM: Xid (%s): %d, %s%s" % (pci_text, number, fields, msg)


class Capture:
    def __init__(self):
        self.lines = []   # (bytes, expected dict or None, ending)
        self.cut = 0      # event lines cut before their number / UUID: the verb counts them as malformed

    def add(self, line, expected=None, ending=b"\n", cut=False):
        if isinstance(line, str):
            line = line.encode()
        self.lines.append((line, expected, ending))
        self.cut += cut

    def noise(self, n, prefix=lambda: ""):
        texts = [
            "EXT4-fs (nvme0n1p2): mounted filesystem with ordered data mode. Quota mode: none.",
            "mlx5_core 0000:9c:00.0 ibp156s0: Link down",
            "pcieport 0000:8f:01.0: AER: Corrected error received: 0000:90:00.0",
            "mce: [Hardware Error]: Machine check events logged",
            "NVRM: GPU Board Serial Number: 1652823398669",
            "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024",
            "nvidia-nvswitch: Probing device 0000:08:00.0, Vendor Id = 0x10de, Device Id = 0x22a3, Class = 0x68000",
            "audit: type=1327 audit(1732860000.500:2122): proctitle=707974686F6E33002D6D00746F726368",
        ]
        for _ in range(n):
            self.add(prefix() + rng.choice(texts))

    def write(self, name, final_newline=True):
        out = bytearray()
        expected = []
        for i, (line, exp, ending) in enumerate(self.lines, 1):
            out += line
            if i < len(self.lines) or final_newline:
                out += ending
            if exp is not None:
                e = {"line": i}
                e.update(exp)
                expected.append(e)
        with open(name + ".log", "wb") as f:
            f.write(out)
        with open(name + ".expected.jsonl", "w") as f:
            for e in expected:
                f.write(json.dumps(e) + "\n")
        with open(name + ".malformed.txt", "w") as f:
            f.write("%d\n" % self.cut)


def n01():
    c = Capture()
    seq = [40000]
    usec = [91000000000]

    def kmsg(prio=4, flags="-", extra=""):
        seq[0] += 1
        usec[0] += rng.randint(1000, 900000)
        return "%d,%d,%d,%s%s;" % (prio, seq[0], usec[0], flags, extra), seq[0], usec[0]

    # An old PCIe box, r3xx era: no "PCI:", no pid/name, numeric register dumps.
    c.noise(5, lambda: "[ 812.%06d] " % rng.randint(0, 999999))
    c.add("[  812.000100] " + xid_text("0000:03:00", 13, "0003 00000000 0000a1c0 00001b0c 00000000 00000000"),
          obj("xid", "0000:03:00", 13, message="0003 00000000 0000a1c0 00001b0c 00000000 00000000", uptime=812000100))
    c.add("[  813.5] " + xid_text("0000:03:00", 31, "Ch 00000001, engmask 00000101, intr 10000000"),
          obj("xid", "0000:03:00", 31, message="Ch 00000001, engmask 00000101, intr 10000000", uptime=813500000))
    c.add("[  815.250000] " + xid_text("0000:04:00", 8, "Channel 00000010"),
          obj("xid", "0000:04:00", 8, message="Channel 00000010", uptime=815250000))
    # The "not supported" line shares the fallen-off-bus opening but is no event.
    c.add("[  816.000000] NVRM: The NVIDIA GPU 0000:05:00.0 (PCI ID: 10de:1b80) installed in this system is not "
          "supported by the NVIDIA 470.82.01 driver release.")
    c.add("[  816.000001] NVRM: GPU at PCI:0000:05:00 has been reset")
    c.noise(20, lambda: "[ 900.%06d] " % rng.randint(0, 999999))

    # GB200 rack: 8-hex domains, some with upper digits set (the last four are kept), journalctl short-monotonic.
    host = "gb200-rack7-n12"
    mono = lambda t: "[%12.6f] %s kernel: " % (t, host)
    c.add(mono(4021.123456) + "NVRM: GPU at PCI:00000008:01:00: GPU-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
          obj("gpu_uuid", "0008:01:00", uuid="GPU-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", uptime=4021123456))
    c.add(mono(4022.000001) + xid_text("PCI:00000008:01:00", 149, "NETIR_LINK_EVT Fatal XC0 i0 Link 08 (0x004505c6 0x00000000 0x00000000)",
                                       pid="'<unknown>'", name="<unknown>"),
          obj("xid", "0008:01:00", 149, message="NETIR_LINK_EVT Fatal XC0 i0 Link 08 (0x004505c6 0x00000000 0x00000000)", uptime=4022000001))
    c.add(mono(4022.5) + xid_text("PCI:00010019:01:00.0", 154, "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot)",
                                  pid=77123, name="torchrun"),
          obj("xid", "0019:01:00", 154, 77123, "torchrun", "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot)", uptime=4022500000))
    c.noise(15, lambda: mono(4030 + rng.random()))

    # dmesg -x: facility and level before the uptime.
    c.add("kern  :err   : [ 4321.000100] " + xid_text("PCI:0000:3b:00", 79, "GPU has fallen off the bus.", pid=1234, name="python3"),
          obj("xid", "0000:3b:00", 79, 1234, "python3", "GPU has fallen off the bus.", uptime=4321000100))
    c.add("kern  :emerg : [ 4321.000200] NVRM: The NVIDIA GPU 0000:3b:00.0 (PCI ID: 10de:2330) installed in this system has "
          "fallen off the bus and is not responding to commands.",
          obj("fallen_off_bus", "0000:3b:00", message="has fallen off the bus", uptime=4321000200))

    # RFC 5424 syslog and ISO 8601 without a fraction; single-digit day in the classic shape.
    c.add("<3>1 2024-11-29T03:13:26.001980Z dgx-a100-003 kernel - - - " + xid_text("PCI:0000:07:00", 48,
          "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 2, subpartition 0."),
          obj("xid", "0000:07:00", 48, message="An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 2, subpartition 0."))
    c.add("2024-11-29T03:13:27+0000 dgx-a100-003 kernel: [   77.5] " + xid_text("PCI:0000:07:00", 63,
          "Row Remapper: New row marked for remapping, reset gpu to activate.", pid=42, name="nv-hostengine"),
          obj("xid", "0000:07:00", 63, 42, "nv-hostengine", "Row Remapper: New row marked for remapping, reset gpu to activate.", uptime=77500000))
    c.add("Nov  9 03:57:54 dgx-a100-003 kernel: nvidia-nvswitch5: SXid (PCI:0000:ca:00.0): 24007, Fatal, Link 17 LTSSM Fault Up",
          obj("sxid", "0000:ca:00", 24007, message="Fatal, Link 17 LTSSM Fault Up"))
    c.add("Nov  9 03:57:54 dgx-a100-003 kernel: nvidia-nvswitch5: SXid (PCI:0000:ca:00.0): 24007, Severity 1 Engine instance 17 Sub-engine instance 00",
          obj("sxid", "0000:ca:00", 24007, message="Severity 1 Engine instance 17 Sub-engine instance 00"))

    # User-space lines: a tool quoting the driver line still holds it (README: the line holds the event text);
    # paraphrases do not.
    c.add('Nov  9 03:58:00 dgx-a100-003 node-problem-detector[77]: matched "NVRM: Xid (PCI:0000:07:00): 79, GPU has fallen off the bus."',
          obj("xid", "0000:07:00", 79, message='GPU has fallen off the bus."'))
    c.add('Nov  9 03:58:01 dgx-a100-003 dcgm-exporter[3333]: level=warning msg="XID 79 on GPU 3 (PCI 0000:07:00)"')
    c.add("Nov  9 03:58:02 dgx-a100-003 nvidia-smi[12]: SXid counters cleared")

    # kmsg records: '+' and 'c' flags, several header fields, continuation lines that quote an Xid.
    h, s, u = kmsg(3, "+", ",caller=C7,foo=bar")
    c.add(h + xid_text("PCI:0000:87:00", 74, "NVLink: fatal error detected on link 3(0x0, 0x0, 0x10000, 0x2000, 0x0, 0x0, 0x0)", pid=99, name="ray::RayWorker"),
          obj("xid", "0000:87:00", 74, 99, "ray::RayWorker", "NVLink: fatal error detected on link 3(0x0, 0x0, 0x10000, 0x2000, 0x0, 0x0, 0x0)", seq=s, uptime=u))
    c.add(" SUBSYSTEM=pci")
    c.add(" DEVICE=+pci:0000:87:00.0")
    c.add(" NVRM: Xid (PCI:0000:87:00): 74, quoted in a dictionary line")
    for _ in range(10):
        h, s, u = kmsg(6)
        c.add(h + "cni0: port 30(veth9354ef69) entered forwarding state")
    h, s, u = kmsg(4, "c")
    c.add(h + "NVRM: GPU at PCI:0000:87:00: GPU-21a3550b-68ab-efb3-6e65-d7c83dec2a02",
          obj("gpu_uuid", "0000:87:00", uuid="GPU-21a3550b-68ab-efb3-6e65-d7c83dec2a02", seq=s, uptime=u))
    # The same event twice is two events: dedup is the controller's job.
    for _ in range(2):
        h, s, u = kmsg(4)
        c.add(h + xid_text("PCI:0000:87:00", 95, "Uncontained: LTC. RST: Yes, D-RST: No", pid="'<unknown>'", name="<unknown>"),
              obj("xid", "0000:87:00", 95, message="Uncontained: LTC. RST: Yes, D-RST: No", seq=s, uptime=u))
    c.noise(20)
    c.write("N01_eras_hosts")


def n02():
    c = Capture()
    crlf = b"\r\n"
    syslog = "Nov 29 04:00:%02d hgx-h200-031 kernel: "

    # Mixed endings: a Windows editor touched the first part of the file.
    c.add(syslog % 1 + "NVRM: GPU at PCI:0000:1b:00: GPU-6cd96b59-c487-d59d-7c5a-15d897c68489",
          obj("gpu_uuid", "0000:1b:00", uuid="GPU-6cd96b59-c487-d59d-7c5a-15d897c68489"), ending=crlf)
    c.add(syslog % 2 + xid_text("PCI:0000:1B:00", 43, "Ch 00000008", pid=2236748), obj("xid", "0000:1b:00", 43, 2236748, message="Ch 00000008"), ending=crlf)
    c.add(b"", ending=crlf)
    c.add(b"   ", ending=b"\n")
    c.add(b"\r", ending=b"\n")

    # Every cut of a full Xid line: an event only once the comma after the number survives.
    full = xid_text("PCI:0000:1b:00", 79, "GPU has fallen off the bus.")
    head = "NVRM: Xid (PCI:0000:1b:00): 79,"
    for k in range(len("NVRM: Xi"), len(full) + 1):
        cut = full[:k]
        if k >= len(head):
            msg = cut[len(head):].strip()
            c.add("[ 100.%06d] " % k + cut, obj("xid", "0000:1b:00", 79, message=msg, uptime=100000000 + k))
        else:
            c.add("[ 100.%06d] " % k + cut, cut=k >= len("NVRM: Xid"))
    # ...of an SXid line.
    full = "nvidia-nvswitch1: SXid (PCI:0000:06:00.0): 20009, Non-fatal, Link 6 RX Short Error Rate"
    head = "nvidia-nvswitch1: SXid (PCI:0000:06:00.0): 20009,"
    for k in range(len("nvidia-nvswitch1: SXid ("), len(full) + 1, 3):
        cut = full[:k]
        if k >= len(head):
            c.add(syslog % 5 + cut, obj("sxid", "0000:06:00", 20009, message=cut[len(head):].strip()))
        else:
            c.add(syslog % 5 + cut, cut=True)
    # ...of a UUID line: a cut UUID must never map a GPU.
    full = "NVRM: GPU at PCI:0000:1b:00: GPU-6cd96b59-c487-d59d-7c5a-15d897c68489"
    for k in range(len("NVRM: GPU at "), len(full) + 1, 2):
        exp = obj("gpu_uuid", "0000:1b:00", uuid=full[-44 + 4:]) if k == len(full) else None
        c.add(syslog % 6 + full[:k], exp, cut=exp is None)
    c.add(syslog % 6 + full, obj("gpu_uuid", "0000:1b:00", uuid="GPU-6cd96b59-c487-d59d-7c5a-15d897c68489"))

    # Invalid UTF-8 of several kinds inside the message: the expected message is the valid text before it.
    bad = [b"\xff", b"\xc3\x28", b"\xe2\x28\xa1", b"\xf0\x90\x28\xbc", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"]
    for i, b in enumerate(bad):
        line = (syslog % 7).encode() + b"NVRM: Xid (PCI:0000:2a:00): 13, pid=" + str(1000 + i).encode() + \
            b", name=python, Graphics SM Warp Exception " + b + b" on (GPC 1, TPC 4, SM 1)"
        c.add(line, obj("xid", "0000:2a:00", 13, 1000 + i, "python", "Graphics SM Warp Exception"))
    # ...and in the host name and in noise.
    c.add(b"Nov 29 04:00:08 hgx-h2\xfe\xff00-031 kernel: " + xid_text("PCI:0000:2a:00", 45, "Ch 00000020").encode(),
          obj("xid", "0000:2a:00", 45, message="Ch 00000020"))
    c.add(b"Nov 29 04:00:08 hgx-h200-031 kernel: usb 1-1: \xc3\x28\xa0\xa1 bad descriptor")

    # NUL bytes: in noise, in a kmsg header (which then is no header), in a message.
    c.add(b"Nov 29 04:00:09 hgx-h200-031 kernel: mce: [Hardware Error]: Mach\x00ine check events logged")
    c.add(b"4,50\x0012,1615067271,-;" + xid_text("PCI:0000:2a:00", 48, "DBE").encode(), obj("xid", "0000:2a:00", 48, message="DBE"))
    c.add(b"4,5013,1615067272,-;" + xid_text("PCI:0000:2a:00", 31, "Ch 0000").encode() + b"\x00" + b"0010",
          obj("xid", "0000:2a:00", 31, message="Ch 0000", seq=5013, uptime=1615067272))

    # A line broken in two by a log shipper: the first half is an event, the second is not.
    c.add(syslog % 10 + "NVRM: Xid (PCI:0000:2a:00): 64, pid=2033129, Row Remapper: Failed to mark row (0x07f4a21d",
          obj("xid", "0000:2a:00", 64, 2033129, message="Row Remapper: Failed to mark row (0x07f4a21d"))
    c.add("b3) for remapping, GPU memory failure.")
    # Two lines glued by a lost newline, the first cut: the whole second event is the line's event.
    c.add(syslog % 10 + "NVRM: Xid (PCI:0000:2a" + syslog % 10 + xid_text("PCI:0000:2a:00", 119, "Timeout after 6s of waiting for RPC response from GPU2 GSP!", pid=9, name="python"),
          obj("xid", "0000:2a:00", 119, 9, "python", "Timeout after 6s of waiting for RPC response from GPU2 GSP!"))

    # A 20 KB noise line, then an event whose line number must still be right; then a 12 KB Xid line.
    c.add(syslog % 11 + "audit: type=1327 proctitle=" + "".join(rng.choice("0123456789ABCDEF") for _ in range(20000)))
    c.add(syslog % 12 + xid_text("PCI:0000:2a:00", 94, "Contained: SM (0x1). RST: No, D-RST: No", pid=5, name="a"),
          obj("xid", "0000:2a:00", 94, 5, "a", "Contained: SM (0x1). RST: No, D-RST: No"))
    dump = "Graphics Exception: ESR" + "".join(" 0x%06x=0x%08x" % (0x504000 + 4 * i, rng.getrandbits(32)) for i in range(560))
    c.add(syslog % 13 + xid_text("PCI:0000:2a:00", 13, dump, pid=2906186, name="python"),
          obj("xid", "0000:2a:00", 13, 2906186, "python", dump[:100]))

    c.noise(30, lambda: syslog % rng.randint(14, 59))
    # The file ends without a newline, in a line cut before its Xid number: no event.
    c.add(syslog % 59 + "NVRM: Xid (PCI:0000:2a:00): ", cut=True)
    c.write("N02_damage", final_newline=False)


if __name__ == "__main__":
    n01()
    n02()
