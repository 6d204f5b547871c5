/**
 * Records every unhandled rejection and uncaught exception of this process until `stop()`, so a
 * test can assert that failures it provoked (a database that hangs or refuses) never escaped.
 */
export function watchProcessErrors(): { readonly errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const record = (error: unknown) => {
    errors.push(error);
  };
  process.on("unhandledRejection", record);
  process.on("uncaughtException", record);
  return {
    errors,
    stop() {
      process.off("unhandledRejection", record);
      process.off("uncaughtException", record);
    },
  };
}
