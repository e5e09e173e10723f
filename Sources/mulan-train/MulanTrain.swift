import ArgumentParser
import MulanCommands

@main
struct MulanTrain: AsyncParsableCommand {
    static let configuration = TrainCommand.configuration
}
