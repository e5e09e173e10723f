import ArgumentParser
import MulanCommands

/// Entry point: the `mulan-embed` command lives in MulanCommands.
@main
struct MulanEmbed: AsyncParsableCommand {
    static let configuration = EmbedCommand.configuration
}
