import ArgumentParser
import MulanCommands

/// Entry point: the `mulan-eval` command lives in MulanCommands.
@main
struct MulanEval: AsyncParsableCommand {
    static let configuration = EvalCommand.configuration
}
