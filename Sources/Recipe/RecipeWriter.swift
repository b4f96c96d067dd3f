import Formatting

/// Writes recipes in the schema's fixed order, with a comment above every value saying what it is and, where
/// known, which rule produced it. TOMLKit's own encoder sorts keys and drops comments, so recipes are written here
/// and read back with the loader to prove them.
public enum RecipeWriter {
    /// - Parameters:
    ///   - notes: provenance per `section.key`, written under the key's description ("from: ...").
    ///   - header: comment lines for the top of the file.
    public static func write(_ recipe: Recipe, notes: [String: String] = [:], header: [String] = []) -> String {
        var out = ""
        for line in header { out += comment(line) }
        if !header.isEmpty { out += "\n" }
        for field in Schema.fields(in: "") {
            out += entry(field, recipe, notes)
        }
        for section in Schema.sections where section.isPresent(in: recipe) {
            out += "\n[\(section.name)]\n"
            out += comment(section.doc) + "\n"
            for field in Schema.fields(in: section.name) {
                out += entry(field, recipe, notes)
            }
        }
        return out
    }

    private static func entry(_ field: Field, _ recipe: Recipe, _ notes: [String: String]) -> String {
        var out = comment(field.doc)
        if let note = notes[field.path] { out += comment("  from: " + note) }
        return out + "\(field.key) = \(field.value(in: recipe))\n"
    }

    private static func comment(_ text: String) -> String {
        // Wrap at about 110 columns so the file reads well in a terminal.
        var lines: [String] = []
        var current = "#"
        for word in text.split(separator: " ") {
            if current.count + word.count + 1 > 110, current != "#" {
                lines.append(current)
                current = "#  "
            }
            current += current == "#" && word.isEmpty ? "" : " " + word
        }
        lines.append(current)
        return lines.joined(separator: "\n") + "\n"
    }

    /// docs/recipe-reference.md, generated from the schema (a test keeps the file in step with it).
    public static func referenceMarkdown() -> String {
        var out = """
        # Recipe reference

        A recipe is one TOML file that describes a training run completely. `gpt-plan -o` writes one; `gpt-plan check`
        validates any number of them; `gpt-train` refuses one that does not pass. Every key below is required unless
        it has a default (a key with a default may be left out, so recipes and checkpoints written before it existed
        still load); unknown keys are errors; integers are accepted where numbers are expected (`lr = 1` means 1.0)
        but not the other way round; and every key has a range, with an upper bound wherever a huge value is
        nonsense (the last column says why). Besides the per-key ranges, `check` verifies:

        - `model.d_model` is a multiple of `model.n_head`;
        - `training.seq_len` ≤ `model.seq_len`;
        - `schedule.warmup_steps` < `training.steps` (a warning outside 1-5% of the steps);
        - `optimizer.min_lr` ≤ `optimizer.lr`;
        - the layout: `training.devices` is the total device count K = d·t·p, so t·p (`tensor_parallel` ×
          `pipeline_parallel`) must divide it; d = devices / (t·p) is the number of data-parallel ranks, and
          `training.batch_size` = `micro_batch` × `grad_accum` × d. With t = p = 1 (the defaults) d = devices, the
          meaning `devices` had before the layout keys existed, so older recipes mean what they meant. `tensor_parallel`
          must divide `model.n_head` and `model.d_ff`, and `pipeline_parallel` ≤ `model.n_layer`;
        - `checkpoint.dir` stays inside the run directory: a relative path may not climb out of it with `..`; an
          absolute path is accepted only with `checkpoint.allow_outside = true`; `/` (or a path that resolves to it)
          never;
        - warnings: `eval.interval`, `checkpoint.interval` or `logging.interval` above `training.steps`; a validation
          (`eval.iters` × `micro_batch` sequences) longer than the training between two;
        - the budget: 6·N·D is within the tolerance (±5% unless `--tolerance` says otherwise) of `plan.flops_budget`,
          with N counted from `[model]` (all parameters; the tied output head once) and
          D = `training.steps` × `training.batch_size` × `training.seq_len`. `plan.params` is never trusted; a
          warning says when it disagrees with the count.
        - what `gpt-train` would say of the recipe on this machine, by the rule it applies itself (`CPUTrainer`): the
          gpt2 family with a tied head or the llama family without biases, data parallelism only (`tensor_parallel`
          and `pipeline_parallel` 1, `zero_stage` at most 1, any `recompute`), and one replica's memory (fp32 weights,
          gradients and AdamW moments, the bf16 copies of `precision` "bf16", one micro-batch's activations) within 90%
          of this machine's RAM. For a recipe
          whose `[hardware]` is cpu or absent these are errors (check accepts exactly what `gpt-train RECIPE` would
          start; `gpt-train RECIPE --check-only` asks the same question); for a GPU recipe, valid for its hardware either
          way, one line says whether gpt-train could start it here.

        Renamed keys: `[model] dropout` (schema version 1) is `[training] dropout` since version 2. The old place is
        still read, with a warning that says how to move it, so that old recipes and the recipes stored in old
        checkpoints load; giving both is an error.

        The file itself: a regular file (not a directory or a device) of at most 1 MiB, in UTF-8 (the first byte
        that is not is reported with its offset, line and column). Messages name the file, the line (and column for
        syntax and encoding errors), the key as `section.key`, and the fix; keys and values longer than 80
        characters are cut when they are echoed.

        This file is generated from `Sources/Recipe/Schema.swift` by `RecipeWriter.referenceMarkdown()`.


        """
        func table(_ fields: [Field]) -> String {
            var out = "| key | type and range | default | meaning | why this range |\n|---|---|---|---|---|\n"
            for field in fields {
                out += "| `\(field.key)` | \(field.kind.allowed) | \(field.defaultValue.map { "`\($0)`" } ?? "required") "
                    + "| \(field.doc) | \(field.bounds) |\n"
            }
            return out
        }
        out += table(Schema.fields(in: ""))
        for section in Schema.sections {
            out += "\n## [\(section.name)]\n\n\(section.doc)\n\n" + table(Schema.fields(in: section.name))
        }
        return out
    }
}
