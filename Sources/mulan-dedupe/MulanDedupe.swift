import ArgumentParser
import MulanCommands

/// Entry point: the `mulan-dedupe` command tree lives in MulanCommands.
@main
struct MulanDedupeMain: AsyncParsableCommand {
    static let configuration = DedupeCommand.configuration
}
