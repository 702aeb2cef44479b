using System.Text;
using FleetWatch.Agent.Sources.Kmsg;

namespace FleetWatch.Agent.Tests.Kmsg;

public sealed class KernelLogParserTests
{
    // One row per line shape: line, then the expected kind/pci/xid/pid/process/message/seq/uptime (kind null = no event).
    public static TheoryData<string, string?, string?, int?, long?, string?, string?, long?, long?> Shapes => new()
    {
        // /dev/kmsg record (DCGM's test line, research/gpu-health-anchors.md section 2.4)
        { "4,1227,437812449932,c;NVRM: Xid (PCI:0000:01:00): 43, pid=1814139, name=cuda_assert_64b, Ch 00000018",
            "xid", "0000:01:00", 43, 1814139, "cuda_assert_64b", "Ch 00000018", 1227, 437812449932 },
        // kmsg with extra header fields (caller=), upper-case hex
        { "4,5020,1616047220,-,caller=T42000;NVRM: Xid (PCI:0000:2A:00): 74, pid='<unknown>', name=<unknown>, NVLink: fatal error detected on link 5(0x0, 0x0)",
            "xid", "0000:2a:00", 74, null, null, "NVLink: fatal error detected on link 5(0x0, 0x0)", 5020, 1616047220 },
        // kmsg header whose flags hold a space is not a header: the line is read as a bare message
        { "6,1,2,- x;NVRM: Xid (PCI:0000:3b:00): 31, Ch 00000010", "xid", "0000:3b:00", 31, null, null, "Ch 00000010", null, null },
        // dmesg [uptime]
        { "[ 5115.512199] NVRM: Xid (0000:04:00): 48, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 5, subpartition 1.",
            "xid", "0000:04:00", 48, null, null, "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 5, subpartition 1.", null, 5115512199 },
        { "[200004.202394] NVRM: Xid (PCI:00000000:ba:00): 74, NVLink: fatal error detected on link 17(0x200000, 0x0)",
            "xid", "0000:ba:00", 74, null, null, "NVLink: fatal error detected on link 17(0x200000, 0x0)", null, 200004202394 },
        // dmesg -T: wall clock only
        { "[Fri Nov 29 03:56:33 2024] NVRM: Xid (PCI:00000000:ba:00): 154, pid=840656, name=all_reduce_perf, GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset)",
            "xid", "0000:ba:00", 154, 840656, "all_reduce_perf", "GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset)", null, null },
        // dmesg -d deltas are not uptimes
        { "[  +0.000004] NVRM: Xid (PCI:0000:3b:00): 13, Graphics Exception", "xid", "0000:3b:00", 13, null, null, "Graphics Exception", null, null },
        // dmesg -x (facility:level prefix before the uptime)
        { "kern  :err   : [ 1234.567890] NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",
            "xid", "0000:3b:00", 79, null, null, "GPU has fallen off the bus.", null, 1234567890 },
        // syslog, with and without the kernel's [uptime]; short fractions scale to microseconds
        { "Nov 29 03:23:43 gpu-node-0113 kernel: NVRM: Xid (PCI:0000:3a:00): 74, pid=2537911, name=python, NVLink: fatal error",
            "xid", "0000:3a:00", 74, 2537911, "python", "NVLink: fatal error", null, null },
        { "Nov  9 03:40:53 gpu-node-0113 kernel: [ 8231.281520] NVRM: Xid (PCI:0000:ba:00): 74, pid=1339250, name=nv-hostengine, NVLink",
            "xid", "0000:ba:00", 74, 1339250, "nv-hostengine", "NVLink", null, 8231281520 },
        { "Nov 29 12:00:00 host kernel: [ 123.4] NVRM: Xid (PCI:0000:3b:00): 63, Row Remapper: New row marked for remapping, reset gpu to activate.",
            "xid", "0000:3b:00", 63, null, null, "Row Remapper: New row marked for remapping, reset gpu to activate.", null, 123400000 },
        // ISO 8601 journal
        { "2024-11-29T03:13:26.001980+00:00 gpu-node-0114.cluster.internal kernel: NVRM: Xid (PCI:0000:19:00): 74, pid=1168290, name=pt_autograd_0, NVLink: x",
            "xid", "0000:19:00", 74, 1168290, "pt_autograd_0", "NVLink: x", null, null },
        // bare messages, GB200 8-hex domain, NVL5 Xid 149
        { "NVRM: Xid (PCI:00000018:01:00): 149, NETIR_LINK_EVT Fatal XC0 i0 Link 08 (0x004505c6 0x00000000)",
            "xid", "0018:01:00", 149, null, null, "NETIR_LINK_EVT Fatal XC0 i0 Link 08 (0x004505c6 0x00000000)", null, null },
        { "NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, Row Remapper: New row marked for remapping, reset gpu to activate.",
            "xid", "0000:10:1c", 63, 1896, null, "Row Remapper: New row marked for remapping, reset gpu to activate.", null, null },
        // old driver without "PCI:" and without pid
        { "NVRM: Xid (0000:03:00): 14, Channel 00000001", "xid", "0000:03:00", 14, null, null, "Channel 00000001", null, null },
        // pid= that is not a number, quoted name, a later "pid=" that is message text
        { "NVRM: Xid (PCI:0000:3b:00): 13, pid=abc, name='trainer', Graphics pid=5 text", "xid", "0000:3b:00", 13, null, "trainer", "Graphics pid=5 text", null, null },
        // a bare number after the fields still ends at the comma; empty message
        { "NVRM: Xid (PCI:0000:3b:00): 79,", "xid", "0000:3b:00", 79, null, null, "", null, null },
        // NVSwitch SXid (all three follow-up lines are events)
        { "[200006.059545] nvidia-nvswitch2: SXid (PCI:0000:07:00.0): 12020, Fatal, Link 26 egress crossbar credit parity error (First)",
            "sxid", "0000:07:00", 12020, null, null, "Fatal, Link 26 egress crossbar credit parity error (First)", null, 200006059545 },
        { "Nov 29 03:23:43 h kernel: nvidia-nvswitch3: SXid (PCI:0000:08:00.0): 20009, Severity 0 Engine instance 01 Sub-engine instance 00",
            "sxid", "0000:08:00", 20009, null, null, "Severity 0 Engine instance 01 Sub-engine instance 00", null, null },
        { "6,777010,12007660986,c;nvidia-nvswitch4: SXid (PCI:0000:c8:00.0): 20034, Data {0x52681b61, 0x00000318}",
            "sxid", "0000:c8:00", 20034, null, null, "Data {0x52681b61, 0x00000318}", 777010, 12007660986 },
        // fallen off the bus, text only
        { "NVRM: The NVIDIA GPU 0000:b3:00.0 (PCI ID: 10de:26b5) installed in this system has fallen off the bus and is not responding to commands.",
            "fallen_off_bus", "0000:b3:00", null, null, null, "has fallen off the bus", null, null },
        { "3,150006,276521844492,c;NVRM: The NVIDIA GPU 0000:87:00.0 (PCI ID: 10de:20b2) installed in this system has fallen off the bus and is not responding to commands.",
            "fallen_off_bus", "0000:87:00", null, null, null, "has fallen off the bus", 150006, 276521844492 },
        // noise, including NVRM lines that are not events
        { "NVRM: The NVIDIA GPU 0000:01:00.0 (PCI ID: 10de:1b80) installed in this system is not supported by the NVIDIA 470.82.01 driver release.",
            null, null, null, null, null, null, null, null },
        { "5,150001,276483561696,-,caller=T88312;NVRM: GPU Board Serial Number: 1652823398669", null, null, null, null, null, null, null, null },
        { "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024", null, null, null, null, null, null, null, null },
        { "Nov 29 03:28:12 h dcgm-exporter[3333]: level=info msg=\"XID 79 seen on GPU 3\"", null, null, null, null, null, null, null, null },
        { "nvidia-nvswitch: SXid counters reset", null, null, null, null, null, null, null, null },
        { "", null, null, null, null, null, null, null, null },
        // continuation (dictionary) lines never hold an event, whatever they say
        { " SUBSYSTEM=pci", null, null, null, null, null, null, null, null },
        { " NVRM: Xid (PCI:0000:01:00): 43, Ch 00000018", null, null, null, null, null, null, null, null },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Every_line_shape(string line, string? kind, string? pci, int? xid, long? pid, string? process, string? message, long? seq, long? uptime)
    {
        var result = KernelLogParser.Parse(Encoding.UTF8.GetBytes(line), out var ev);
        if (kind is null)
        {
            Assert.Equal(KernelLogLineResult.None, result);
            Assert.Null(ev);
            return;
        }

        Assert.Equal(KernelLogLineResult.Event, result);
        Assert.NotNull(ev);
        Assert.Equal(kind, XidJsonLines.KindName(ev.Kind));
        Assert.Equal((pci, xid, pid, process, message, seq, uptime), (ev.Pci, ev.Xid, ev.Pid, ev.Process, ev.Message, ev.Sequence, ev.UptimeMicroseconds));
    }

    [Theory]
    [InlineData("[ 5070.897846] NVRM: GPU at PCI:0000:83:00: GPU-da5da3a6-aea1-83c9-edcd-c125eb110ca6", "0000:83:00", "GPU-da5da3a6-aea1-83c9-edcd-c125eb110ca6", null, 5070897846L)]
    [InlineData("3,150003,276519782057,-;NVRM: GPU at PCI:0000:87:00: GPU-21a3550b-68ab-efb3-6e65-d7c83dec2a02", "0000:87:00", "GPU-21a3550b-68ab-efb3-6e65-d7c83dec2a02", 150003L, 276519782057L)]
    [InlineData("NVRM: GPU at PCI:00000009:01:00.0: GPU-45EAB12C-E144-7B1C-26A4-DF5D9AA40520 extra", "0009:01:00", "GPU-45EAB12C-E144-7B1C-26A4-DF5D9AA40520", null, null)]
    public void Gpu_uuid_lines_map_pci_to_uuid(string line, string pci, string uuid, long? seq, long? uptime)
    {
        Assert.Equal(KernelLogLineResult.Event, KernelLogParser.Parse(Encoding.UTF8.GetBytes(line), out var ev));
        Assert.Equal((KernelLogEventKind.GpuUuid, pci, uuid, seq, uptime), (ev!.Kind, ev.Pci, ev.Uuid, ev.Sequence, ev.UptimeMicroseconds));
        Assert.Null(ev.Xid);
    }

    [Theory]
    // Cut before the Xid/SXid number, or before/inside the UUID: skipped and counted (bench-data/xid/README.md).
    [InlineData("NVRM: Xid (")]
    [InlineData("NVRM: Xid (PC")]
    [InlineData("NVRM: Xid (PCI:")]
    [InlineData("Nov 29 03:24:43 h kernel: NVRM: Xid (PCI:0000:ba")]
    [InlineData("NVRM: Xid (PCI:0000:3b:00")]
    [InlineData("NVRM: Xid (PCI:0000:3b:00)")]
    [InlineData("NVRM: Xid (PCI:0000:3b:00): ")]
    [InlineData("NVRM: Xid (PCI:0000:3b:00): 7")]
    [InlineData("NVRM: Xid (PCI:0000:3b:00): 1234567890, ten digits is no Xid")]
    [InlineData("NVRM: Xid (PCI:zzzz:3b:00): 79, bad id")]
    [InlineData("NVRM: Xid")]
    [InlineData("4,5013,1613868271,-;nvidia-nvswitch0: SXid (PCI:0000:05:00")]
    [InlineData("nvidia-nvswitch0: SXid (PCI:0000:05:00.0): ")]
    [InlineData("4,5028,1657673784,-;NVRM: GPU at PCI:0000:ba:00:")]
    [InlineData("NVRM: GPU at PCI:0000:ba:00: GPU-")]
    [InlineData("NVRM: GPU at PCI:0000:ba:00: GPU-6cd96b59-c487-d59d")]
    [InlineData("NVRM: GPU at PCI:0000:ba:00: GP")]
    [InlineData("NVRM: GPU at PCI:")]
    [InlineData("NVRM: The NVIDIA GPU 0000:b")]
    public void Truncated_event_lines_are_malformed(string line)
    {
        Assert.Equal(KernelLogLineResult.Malformed, KernelLogParser.Parse(Encoding.UTF8.GetBytes(line), out var ev));
        Assert.Null(ev);
    }

    [Fact]
    public void Crlf_line_ending_is_not_part_of_the_message()
    {
        var line = "Nov 29 03:38:17 h kernel: NVRM: Xid (PCI:0000:5d:00): 43, Ch 00000008\r"u8;
        KernelLogParser.Parse(line, out var ev);
        Assert.Equal("Ch 00000008", ev!.Message);
        KernelLogParser.Parse("NVRM: GPU at PCI:0000:5d:00: GPU-b399c0bb-d7f6-2a30-d498-5780910202cb\r"u8, out ev);
        Assert.Equal("GPU-b399c0bb-d7f6-2a30-d498-5780910202cb", ev!.Uuid);
    }

    [Fact]
    public void Invalid_utf8_in_the_prefix_or_the_message_keeps_the_event_and_the_valid_text()
    {
        byte[] line = [.. "Nov 29 03:31:28 hg"u8, 0xC3, 0x28, .. "x-h100 kernel: NVRM: Xid (PCI:0000:ab:00): 13, pid=3556852, name=nvidia-smi, Graphics Exception: ESR 0x514730 "u8, 0xFF, 0xE2, 0x28, 0xA1];
        Assert.Equal(KernelLogLineResult.Event, KernelLogParser.Parse(line, out var ev));
        Assert.Equal(("0000:ab:00", 13, 3556852L, "nvidia-smi"), (ev!.Pci, ev.Xid, ev.Pid, ev.Process));
        Assert.StartsWith("Graphics Exception: ESR 0x514730 ", ev.Message, StringComparison.Ordinal);
        Assert.Contains('\uFFFD', ev.Message);
    }

    [Fact]
    public void Nul_bytes_neither_hide_an_event_nor_invent_one()
    {
        byte[] noise = [.. "Nov 29 03:31:32 h kernel: mce: [Hardware Error]: Mach"u8, 0, .. "ine check events logged"u8];
        Assert.Equal(KernelLogLineResult.None, KernelLogParser.Parse(noise, out _));

        byte[] xid = [.. "[ 12.000001] NVRM: Xid (PCI:0000:3b:00): 31, Ch 0000"u8, 0, .. "0010"u8];
        Assert.Equal(KernelLogLineResult.Event, KernelLogParser.Parse(xid, out var ev));
        Assert.Equal((31, 12000001L), (ev!.Xid, ev.UptimeMicroseconds));
        Assert.Equal("Ch 0000\uFFFD0010", ev.Message); // damage is marked, not passed on as a NUL

        // A NUL inside the kmsg header breaks the header, not the event.
        byte[] header = [.. "4,50"u8, 0, .. "12,1615067271,-;NVRM: Xid (PCI:0000:18:00): 48, DBE"u8];
        Assert.Equal(KernelLogLineResult.Event, KernelLogParser.Parse(header, out ev));
        Assert.Equal((48, (long?)null), (ev!.Xid, ev.Sequence));
    }

    [Fact]
    public void Lines_over_10_KB_keep_the_event_and_cap_the_message()
    {
        var dump = string.Concat(Enumerable.Range(0, 1200).Select(i => $" 0x{0x504000 + (i * 4):x}=0x{i:x8}"));
        var line = Encoding.UTF8.GetBytes("Nov 29 03:31:29 h kernel: NVRM: Xid (PCI:0000:3a:00): 13, pid=2906186, name=python, Graphics Exception: ESR" + dump);
        Assert.True(line.Length > 10_000);
        Assert.Equal(KernelLogLineResult.Event, KernelLogParser.Parse(line, out var ev));
        Assert.Equal((13, 2906186L, "python"), (ev!.Xid, ev.Pid, ev.Process));
        Assert.InRange(ev.Message.Length, KernelLogParser.MaxMessageChars - 16, KernelLogParser.MaxMessageChars);
        Assert.StartsWith("Graphics Exception: ESR 0x504000=0x00000000 0x504004=0x00000001", ev.Message, StringComparison.Ordinal);

        // ...and a long noise line holds none.
        var noise = Encoding.UTF8.GetBytes("audit: type=1327 proctitle=" + new string('A', 20_000));
        Assert.Equal(KernelLogLineResult.None, KernelLogParser.Parse(noise, out _));
    }

    [Fact]
    public void A_cut_event_glued_to_a_whole_one_yields_the_whole_one()
    {
        KernelLogParser.Parse("[  100.100000] NVRM: Xid (PCI:0000:3b[  100.200000] NVRM: Xid (PCI:0000:5d:00): 13, Graphics Exception"u8, out var ev);
        Assert.Equal(("0000:5d:00", 13, 100200000L), (ev!.Pci, ev.Xid, ev.UptimeMicroseconds));

        KernelLogParser.Parse("nvidia-nvswitch0: SXid (PCI:0000:05Nov 29 h kernel: nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 20034, Fatal"u8, out ev);
        Assert.Equal(("0000:05:00", 20034), (ev!.Pci, ev.Xid));

        // Two cut ones: still one malformed line.
        Assert.Equal(KernelLogLineResult.Malformed, KernelLogParser.Parse("NVRM: Xid (PCI:0000:3bNVRM: GPU at PCI:0000:3b:00: GPU-12"u8, out _));
    }

    [Fact]
    public void Printk_caller_ids_after_the_uptime_are_not_uptimes()
    {
        KernelLogParser.Parse("[ 1234.567890][ T1234] NVRM: Xid (PCI:0000:3b:00): 31, Ch"u8, out var ev);
        Assert.Equal(1234567890L, ev!.UptimeMicroseconds);
    }

    [Fact]
    public void Kmsg_uptime_comes_from_the_header_not_from_a_bracket_in_the_text()
    {
        KernelLogParser.Parse("6,10,999,-;[ 5.000000] NVRM: Xid (PCI:0000:3b:00): 31, Ch"u8, out var ev);
        Assert.Equal((10L, 999L), (ev!.Sequence, ev.UptimeMicroseconds));
    }

    [Theory]
    [InlineData("PCI:0000:3B:00", "0000:3b:00")]
    [InlineData("0000:3b:00.0", "0000:3b:00")]
    [InlineData("00000000:3B:00.0", "0000:3b:00")]
    [InlineData("0000:03:00", "0000:03:00")]
    [InlineData("PCI:00000009:01:00", "0009:01:00")]
    [InlineData("00010018:01:00.1", "0018:01:00")]
    [InlineData("pci:0000:db:00", "0000:db:00")]
    [InlineData("3b:00.0", "0000:3b:00")]
    [InlineData("0:3:0", "0000:03:00")]
    [InlineData(" 0000:3b:00 ", "0000:3b:00")]
    public void Pci_ids_normalise_to_lower_case_domain_bus_device(string input, string expected)
    {
        Assert.True(PciBusId.TryNormalize(input, out var pci));
        Assert.Equal(expected, pci);
    }

    [Theory]
    [InlineData("")]
    [InlineData("PCI:")]
    [InlineData("0000")]
    [InlineData("0000:3bx:00")]
    [InlineData("0000:3b:00:00")]
    [InlineData("0000:3b:00.")]
    [InlineData("0000:3b:00.0.0")]
    [InlineData("123456789:3b:00")]
    [InlineData("0000:3b:000")]
    [InlineData("0000::00")]
    [InlineData("0000:3b:é0")]
    public void Non_pci_ids_are_rejected(string input) => Assert.False(PciBusId.TryNormalize(input, out _));
}
