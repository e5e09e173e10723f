import ArgumentParser
import MulanCommands

/// Entry point: the `mulan-filter` command tree lives in MulanCommands.
@main
struct MulanFilter: AsyncParsableCommand {
    static let configuration = FilterCommand.configuration
}
