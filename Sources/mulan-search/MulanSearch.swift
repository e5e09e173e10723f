import ArgumentParser
import MulanCommands

/// Entry point: the `mulan-search` command lives in MulanCommands.
@main
struct MulanSearch: AsyncParsableCommand {
    static let configuration = SearchCommand.configuration
}
