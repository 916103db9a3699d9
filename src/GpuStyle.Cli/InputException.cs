namespace GpuStyle.Cli;

/// <summary>Bad usage or bad input: exit status 2 with this one-line message (DESIGN.md §4).</summary>
public sealed class InputException(string message) : Exception(message);
