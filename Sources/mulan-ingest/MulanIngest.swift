import ArgumentParser
import MulanCommands

/// Entry point: the `mulan-ingest` command tree lives in MulanCommands.
@main
struct MulanIngest: AsyncParsableCommand {
    static let configuration = IngestCommand.configuration
}
