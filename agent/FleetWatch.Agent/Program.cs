namespace FleetWatch.Agent;

/// <summary>Entry point of <c>fleetwatch-agent</c>, the node agent published as a Native AOT executable.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => Hosting.AgentNodeHost.RunAsync(args, Console.Out, Console.Error);
}
