namespace FleetWatch.Controller.Stragglers;

/// <summary>In-place order statistics on spans (no allocation), for the per-step and per-window medians.</summary>
internal static class Selection
{
    /// <summary>Median of <paramref name="values"/> (mean of the two middle values for an even count); reorders the span. NaN when empty.</summary>
    public static float Median(Span<float> values)
    {
        var n = values.Length;
        if (n == 0)
        {
            return float.NaN;
        }

        var hi = Select(values, n / 2);
        if ((n & 1) == 1)
        {
            return hi;
        }

        // After selecting n/2, everything left of it is ≤ it: the lower middle is their maximum.
        var lo = values[0];
        for (var i = 1; i < n / 2; i++)
        {
            lo = Math.Max(lo, values[i]);
        }

        return (lo + hi) / 2f;
    }

    /// <summary>Median of doubles (copies into <paramref name="scratch"/>, which must be at least as long).</summary>
    public static double Median(ReadOnlySpan<double> values, Span<double> scratch)
    {
        var n = values.Length;
        if (n == 0)
        {
            return double.NaN;
        }

        var s = scratch[..n];
        values.CopyTo(s);
        s.Sort();
        return (n & 1) == 1 ? s[n / 2] : (s[(n / 2) - 1] + s[n / 2]) / 2;
    }

    /// <summary>Hoare quickselect: the k-th smallest value, with smaller values left of index k.</summary>
    public static float Select(Span<float> a, int k)
    {
        int left = 0, right = a.Length - 1;
        while (right > left)
        {
            if (right - left < 16)
            {
                a[left..(right + 1)].Sort();
                return a[k];
            }

            // Median of three as pivot keeps already-sorted input (common: similar ranks) linear.
            var mid = left + ((right - left) / 2);
            var pivot = MedianOf3(a[left], a[mid], a[right]);
            int i = left, j = right;
            while (i <= j)
            {
                while (a[i] < pivot)
                {
                    i++;
                }

                while (a[j] > pivot)
                {
                    j--;
                }

                if (i <= j)
                {
                    (a[i], a[j]) = (a[j], a[i]);
                    i++;
                    j--;
                }
            }

            if (k <= j)
            {
                right = j;
            }
            else if (k >= i)
            {
                left = i;
            }
            else
            {
                return a[k];
            }
        }

        return a[k];
    }

    private static float MedianOf3(float a, float b, float c) =>
        a < b ? (b < c ? b : Math.Max(a, c)) : (a < c ? a : Math.Max(b, c));
}
