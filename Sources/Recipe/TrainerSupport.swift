import GPTShape

extension Recipe {
    /// The run gpt-train would make of this recipe, as `CPUTrainer` judges it.
    public var cpuTrainerRun: CPUTrainer.Run {
        CPUTrainer.Run(shape: shape, microBatch: training.microBatch, context: training.seqLen,
                       precision: training.precision, tensorParallel: training.tensorParallel,
                       pipelineParallel: training.pipelineParallel, zeroStage: training.zeroStage,
                       recompute: training.recompute)
    }

    /// Why gpt-train (the CPU trainer) cannot build this recipe's model, or nil when it can
    /// (`CPUTrainer.modelProblems`): GPT-2 blocks with a tied head and LayerNorm ε 1e-5; Llama blocks without biases
    /// and with an even head size.
    public var cpuTrainerRefusal: String? {
        CPUTrainer.modelProblems(shape).first?.description
    }
}
