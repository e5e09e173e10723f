public enum TrainingPlaceholder {}
