package org.bertj.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code bertj} command line. Logs and progress go to stderr, results to stdout; a failure
 * prints one clear line on stderr and exits non-zero.
 */
@Command(name = "bertj", mixinStandardHelpOptions = true, versionProvider = Version.class,
    description = "A BERT engine for the JVM: fine-tune, evaluate, predict, embed, bench.",
    subcommands = {CommandLine.HelpCommand.class,
        FinetuneCommand.class,
        EvaluateCommand.class,
        PredictCommand.class,
        EmbedCommand.class,
        BenchCommand.class})
public final class Main implements Runnable {

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(System.err);
  }

  /** Builds the command line (subcommands are registered here). */
  public static CommandLine commandLine() {
    CommandLine cl = new CommandLine(new Main());
    cl.setExecutionExceptionHandler((ex, cmd, parseResult) -> {
      cmd.getErr().println("bertj " + cmd.getCommandName() + ": " + message(ex));
      if (Boolean.getBoolean("bertj.debug")) {
        ex.printStackTrace(cmd.getErr());
      }
      return 1;
    });
    return cl;
  }

  static String message(Throwable ex) {
    String m = ex.getMessage();
    return m == null || m.isBlank() ? ex.getClass().getSimpleName() : m;
  }

  public static void main(String[] args) {
    System.exit(commandLine().execute(args));
  }
}
