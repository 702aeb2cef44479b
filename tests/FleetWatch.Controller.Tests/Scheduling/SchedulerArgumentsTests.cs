using FleetWatch.Controller.Remediation.Scheduling;

namespace FleetWatch.Controller.Tests.Scheduling;

public sealed class SchedulerArgumentsTests
{
    [Theory]
    [InlineData("gpu001", true)]
    [InlineData("dgx-a100-017.rack3.example", true)]
    [InlineData("n1", true)]
    [InlineData("gpu[001-999]", false)]
    [InlineData("gpu001,gpu002", false)]
    [InlineData("gpu001 state=resume", false)]
    [InlineData("nodename=gpu001", false)]
    [InlineData("-gpu001", false)]
    [InlineData("gpu001-", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    [InlineData("ALL", true)] // a literal node called ALL is a name; Slurm's "ALL" keyword is not accepted by scontrol update nodename
    public void Node_names_are_single_plain_host_names(string? node, bool valid) =>
        Assert.Equal(valid, SchedulerArguments.IsValidNodeName(node));

    [Fact]
    public void Node_names_are_at_most_63_characters() =>
        Assert.Equal([true, false], new[] { new string('a', 63), new string('a', 64) }.Select(SchedulerArguments.IsValidNodeName).ToArray());

    [Theory]
    [InlineData("1234", true)]
    [InlineData("1234_7", true)]
    [InlineData("1234,1235", false)]
    [InlineData("1234 5", false)]
    [InlineData("train-job", false)]
    [InlineData("-1", false)]
    [InlineData("", false)]
    public void Slurm_job_ids_are_numbers(string id, bool valid) =>
        Assert.Equal(valid, SchedulerArguments.IsValidSlurmJobId(id));

    [Theory]
    [InlineData("incident 42", "incident 42")]
    [InlineData("  two\nlines\r\n\tand  tabs ", "two lines and tabs")]
    [InlineData("", "unspecified")]
    [InlineData(null, "unspecified")]
    [InlineData("\u0000\u0007", "unspecified")]
    public void Reasons_become_one_trimmed_line(string? reason, string expected) =>
        Assert.Equal(expected, SchedulerArguments.CleanReason(reason));

    [Fact]
    public void Reasons_are_cut_to_the_limit()
    {
        var cleaned = SchedulerArguments.CleanReason(new string('x', 1000));

        Assert.Equal(SchedulerArguments.MaxReasonLength, cleaned.Length);
    }

    [Theory]
    [InlineData("inc-42", "inc-42")]
    [InlineData("incident 42: Xid 79", "incident-42-Xid-79")]
    [InlineData("--weird__", "weird")]
    [InlineData("ünïcode", "n-code")]
    [InlineData("!!!", "unspecified")]
    public void Label_values_keep_only_allowed_characters(string text, string expected) =>
        Assert.Equal(expected, SchedulerArguments.ToLabelValue(text));

    [Fact]
    public void Label_values_are_at_most_63_characters_and_end_with_an_alphanumeric()
    {
        var value = SchedulerArguments.ToLabelValue(new string('a', 62) + "-b" + new string('c', 10));

        Assert.Equal(new string('a', 62), value);
    }
}
