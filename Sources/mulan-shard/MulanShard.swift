import ArgumentParser
import MulanCommands

/// Entry point: the `mulan-shard` command tree lives in MulanCommands.
@main
struct MulanShard: AsyncParsableCommand {
    static let configuration = ShardCommand.configuration
}
