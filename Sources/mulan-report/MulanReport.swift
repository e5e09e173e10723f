import ArgumentParser
import MulanCommands

/// Entry point: the `mulan-report` command lives in MulanCommands.
@main
struct MulanReport: AsyncParsableCommand {
    static let configuration = ReportCommand.configuration
}
