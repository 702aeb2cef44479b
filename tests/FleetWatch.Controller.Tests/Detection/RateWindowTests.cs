using FleetWatch.Contracts;
using FleetWatch.Controller;
using FleetWatch.Controller.Detection;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;

namespace FleetWatch.Controller.Tests.Detection;

public sealed class RateWindowTests
{
    [Fact]
    public void Sum_covers_the_window_and_forgets_what_left_it()
    {
        var window = new RateWindow(TimeSpan.FromSeconds(60));
        for (var s = 1; s <= 120; s++)
        {
            window.Add(T0.AddSeconds(s), 1, T0.AddSeconds(s - 1));
        }

        // 12 buckets of 5 s: between 55 and 60 seconds' worth of increases remain.
        Assert.InRange(window.Sum(T0.AddSeconds(120)), 55, 61);
        Assert.Equal(120, window.Total);
        Assert.False(window.IsEmpty(T0.AddSeconds(150)));
        Assert.True(window.IsEmpty(T0.AddSeconds(190)));
    }

    [Fact]
    public void A_long_gap_counts_only_the_window_share_of_its_increase()
    {
        // The node was silent for 10 minutes; 600 errors accrued at 1/s are not a burst of 600 in one tick.
        var window = new RateWindow(TimeSpan.FromSeconds(60));
        window.Add(T0.AddSeconds(600), 600, T0);

        Assert.Equal(60, window.Sum(T0.AddSeconds(600)), 6);
    }

    [Fact]
    public void Rate_is_never_averaged_over_less_than_the_minimum_span()
    {
        var window = new RateWindow(TimeSpan.FromSeconds(60));
        window.Add(T0.AddSeconds(1), 1, T0);

        Assert.Equal(0.1, window.PerSecond(T0.AddSeconds(1), T0, TimeSpan.FromSeconds(10)), 6);
        Assert.Equal(1.0 / 41, window.PerSecond(T0.AddSeconds(41), T0, TimeSpan.FromSeconds(10)), 6);
    }

    [Fact]
    public void Detector_state_stays_bounded_under_constant_noise()
    {
        // Every link of 8 GPUs sees a stray CRC error now and then for an hour: windows come and go, never pile up.
        var state = new NodeDetectionState();
        var options = new DetectionOptions();
        NodeSample? previous = null;
        var maxWindows = 0;
        for (var s = 0; s < 3600; s++)
        {
            var links = new List<NvLinkSample>();
            for (var g = 0; g < 8; g++)
            {
                for (var l = 0; l < 18; l++)
                {
                    links.Add(new NvLinkSample { GpuIndex = g, Link = l, Up = true, CrcFlitErrors = (s + (g * 18) + l) / 600, ReplayErrors = 0 });
                }
            }

            var sample = Node(s + 1, s, Enumerable.Range(0, 8).Select(g => Gpu(g)).ToArray()) with { NvLinks = links };
            var output = new List<Finding>();
            SampleDetectors.Evaluate(previous, sample, state, options, output);
            Assert.DoesNotContain(output, f => f.Active);
            maxWindows = Math.Max(maxWindows, state.WindowCount);
            previous = sample;
        }

        Assert.InRange(maxWindows, 1, 144);
    }

    [Fact]
    public void Shipped_detection_defaults_pass_validation()
    {
        Assert.Empty(ControllerServiceCollectionExtensions.ValidateDetection(new DetectionOptions()));
    }

    [Fact]
    public void Cross_field_errors_name_the_key_and_value()
    {
        var errors = ControllerServiceCollectionExtensions.ValidateDetection(new DetectionOptions
        {
            NvLinkCrcWarningPerSecond = 500,
            HwSlowdownHighAfter = TimeSpan.FromSeconds(30),
            IbErrorCounters = ["symbol_error", "port_xmit_wait"],
        }).ToList();

        Assert.Contains(errors, e => e.Key == "FleetWatch:Detection:NvLinkCrcWarningPerSecond" && Equals(e.Value, 500.0));
        Assert.Contains(errors, e => e.Key == "FleetWatch:Detection:HwSlowdownHighAfter");
        Assert.Contains(errors, e => e.Key == "FleetWatch:Detection:IbErrorCounters:1" && Equals(e.Value, "port_xmit_wait"));
    }
}
