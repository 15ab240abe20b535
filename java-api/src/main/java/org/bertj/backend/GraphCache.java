package org.bertj.backend;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Runs a step body per key: eagerly the first time a key is seen (the warm-up: workspaces are
 * laid out, lazy buffers allocated, GEMM shapes tuned), then captured once into a
 * {@link DeviceGraph} and replayed from then on. A graph made invalid by a free runs eagerly
 * again and is captured again the time after.
 *
 * <p>The caller's contract: everything the body's ops depend on, other than data in backend memory
 * (the uploaded batch, {@link Backend#useStepScalars}), is in the key, so that two runs with equal
 * keys queue the same ops with the same arguments; and the body's Java side effects are the same
 * however many times it runs (a replay does not run them). A capture that fails (something in the
 * body cannot be captured) is said once on stderr; that key then always runs eagerly.
 *
 * <p>Disabled, {@link #run} just runs the body. {@code -Dbertj.graphs=true} enables the caches that
 * bertj's training step and inference make ({@link #enabledByDefault}); off by default.
 */
public final class GraphCache implements AutoCloseable {
  /**
   * Keys kept (with their graphs); the least recently used is dropped beyond this. A graph holds
   * only its nodes' parameters, no tensors. SST-2 fine-tuning (MiniLM, batches grouped by length,
   * padding removal) met 256 step shapes in one epoch, 192 of them more than once.
   */
  private static final int MAX_GRAPHS = 512;

  private final Backend be;
  private final boolean enabled;
  private final Map<Object, Entry> entries = new LinkedHashMap<>(16, 0.75f, true);
  private boolean warned;
  private long eager;
  private long captures;
  private long replays;
  private long failures;

  private static final class Entry {
    DeviceGraph graph;
    boolean eagerOnly;
  }

  public GraphCache(Backend be, boolean enabled) {
    this.be = be;
    this.enabled = enabled;
  }

  /** The system property bertj.graphs (default false). */
  public static boolean enabledByDefault() {
    return Boolean.parseBoolean(System.getProperty("bertj.graphs", "false"));
  }

  public boolean enabled() {
    return enabled;
  }

  /** Runs body (eagerly, or by replaying its graph) for key; see the class comment. */
  public void run(Object key, Runnable body) {
    if (!enabled) {
      body.run();
      return;
    }
    Entry e = entries.get(key);
    if (e == null) {
      e = new Entry();
      entries.put(key, e);
      evict();
      eager++;
      body.run(); // warm-up
      return;
    }
    if (e.graph != null && !e.graph.isValid()) {
      e.graph.close();
      e.graph = null;
      eager++;
      body.run(); // memory moved: warm up again, capture next time
      return;
    }
    if (e.eagerOnly) {
      eager++;
      body.run();
      return;
    }
    if (e.graph == null) {
      try {
        e.graph = be.captureGraph(body);
        captures++;
      } catch (GraphCaptureException | NativeException ex) {
        failures++;
        e.eagerOnly = true;
        if (!warned) {
          warned = true;
          System.err.println("bertj: graph capture failed (" + ex.getMessage()
              + "); this step shape runs eagerly");
        }
        eager++;
        body.run();
        return;
      }
    }
    replays++;
    e.graph.replay();
  }

  private void evict() {
    while (entries.size() > MAX_GRAPHS) {
      var it = entries.entrySet().iterator();
      Entry old = it.next().getValue();
      if (old.graph != null) {
        old.graph.close();
      }
      it.remove();
    }
  }

  /** Runs that ran the body eagerly (warm-ups, invalidated graphs, failed captures, eager-only keys). */
  public long eagerRuns() {
    return eager;
  }

  public long captures() {
    return captures;
  }

  /** Runs done by replaying a graph (including the replay right after each capture). */
  public long replays() {
    return replays;
  }

  public long failures() {
    return failures;
  }

  /** Graphs held now. */
  public int graphs() {
    int n = 0;
    for (Entry e : entries.values()) {
      n += e.graph != null ? 1 : 0;
    }
    return n;
  }

  /** Closes every graph (the keys are forgotten). */
  @Override
  public void close() {
    for (Entry e : entries.values()) {
      if (e.graph != null) {
        e.graph.close();
      }
    }
    entries.clear();
  }
}
