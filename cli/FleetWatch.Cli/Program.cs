namespace FleetWatch.Cli;

/// <summary>Entry point: one verb per FleetWatch role or offline tool (FORMATS.md).</summary>
public static class Program
{
    public static async Task<int> Main(string[] args) => await Verbs.RunAsync(args, Console.Out, Console.Error);
}
