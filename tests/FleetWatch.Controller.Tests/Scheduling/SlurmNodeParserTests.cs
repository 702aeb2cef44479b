using FleetWatch.Controller.Remediation.Scheduling;

namespace FleetWatch.Controller.Tests.Scheduling;

/// <summary>Records of <c>scontrol show node -o</c> as Slurm 22.05.8 prints them (captured on the test cluster), and variants.</summary>
public sealed class SlurmNodeParserTests
{
    private const string Head = "NodeName=gpu001 Arch=x86_64 CoresPerSocket=1  CPUAlloc=1 CPUEfctv=2 CPUTot=2 CPULoad=1.85 AvailableFeatures=(null) ActiveFeatures=(null) " +
        "Gres=(null) NodeAddr=127.0.0.1 NodeHostName=vm Port=17001 Version=22.05.8 OS=Linux 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=1 " +
        "AllocMem=1 FreeMem=18669 Sockets=2 Boards=1 ";

    private const string Tail = " ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=main  BootTime=2026-11-29T20:33:13 " +
        "SlurmdStartTime=2026-11-29T23:15:07 LastBusyTime=2026-11-29T23:15:07 CfgTRES=cpu=2,mem=1M,billing=2 AllocTRES=cpu=1,mem=1M CapWatts=n/a " +
        "CurrentWatts=0 AveWatts=0 ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s";

    public static TheoryData<string, bool, string, string?> Records => new()
    {
        { Head + "State=MIXED" + Tail, false, "MIXED", null },
        { Head + "State=IDLE" + Tail, false, "IDLE", null },
        { Head + "State=MIXED+DRAIN" + Tail + " Reason=incident 42: Xid 79 [root@2026-11-29T23:15:20]", true, "MIXED+DRAIN", "incident 42: Xid 79" },
        { Head + "State=IDLE+DRAIN" + Tail + " Reason=fleetwatch: inc-7 state=resume Reason=x [slurm@2026-11-29T23:15:20]", true, "IDLE+DRAIN", "fleetwatch: inc-7 state=resume Reason=x" },
        { Head + "State=DOWN+NOT_RESPONDING" + Tail + " Reason=Not responding [slurm@2026-11-29T23:40:00]", true, "DOWN+NOT_RESPONDING", "Not responding" },
        { Head + "State=IDLE+DRAIN" + Tail + " Reason=[brackets] kept [root@2026-11-29T23:15:20]", true, "IDLE+DRAIN", "[brackets] kept" },
        { Head + "State=IDLE" + Tail + " Reason=(null)", false, "IDLE", null },
    };

    [Theory]
    [MemberData(nameof(Records))]
    public void Reads_the_state_and_the_free_text_reason(string line, bool drained, string state, string? reason)
    {
        var parsed = SlurmNodeParser.Parse("gpu001", line);

        Assert.Equal(new SchedulerNodeState("gpu001", true, drained, state, reason), parsed);
    }

    [Fact]
    public void Values_with_spaces_and_equals_signs_stay_whole()
    {
        var fields = SlurmNodeParser.Fields(Head + "State=IDLE" + Tail);

        Assert.Equal("Linux 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0", fields["OS"]);
        Assert.Equal("cpu=2,mem=1M,billing=2", fields["CfgTRES"]);
        Assert.Equal("17001", fields["Port"]);
    }

    [Fact]
    public void A_record_of_another_node_or_no_record_is_not_found()
    {
        Assert.False(SlurmNodeParser.Parse("gpu002", Head + "State=IDLE" + Tail).Found);
        Assert.False(SlurmNodeParser.Parse("gpu001", "").Found);
        Assert.False(SlurmNodeParser.Parse("gpu001", "Node gpu001 not found").Found);
    }

    [Theory]
    [InlineData("IDLE+DRAIN", true)]
    [InlineData("MIXED+DRAIN", true)]
    [InlineData("DOWN+DRAIN+NOT_RESPONDING", true)]
    [InlineData("DOWN", false)]
    [InlineData("ALLOCATED", false)]
    public void Only_the_drain_flag_counts_as_drained_by_someone(string state, bool flagged) =>
        Assert.Equal(flagged, SlurmNodeParser.HasDrainFlag(state));

    [Fact]
    public void A_job_record_keeps_its_reason_code_in_the_middle()
    {
        var fields = SlurmNodeParser.Fields("JobId=3 JobName=job.sh UserId=root(0) JobState=PENDING Reason=BeginTime Dependency=(null) Requeue=1 Restarts=1 " +
            "ExcNodeList=gpu[001-002] NodeList=(null) Command=/tmp/my job.sh");

        Assert.Equal("PENDING", fields["JobState"]);
        Assert.Equal("BeginTime", fields["Reason"]);
        Assert.Equal("gpu[001-002]", fields["ExcNodeList"]);
        Assert.Equal("/tmp/my job.sh", fields["Command"]);
    }
}
