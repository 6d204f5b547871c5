import { defineConfig } from "drizzle-kit";

// Only `generate` runs through drizzle-kit (it needs no database); `npm run db:migrate` applies
// the SQL with the app's own driver and validated env (scripts/migrate.ts).
export default defineConfig({
  dialect: "postgresql",
  schema: "./lib/schema.ts",
  out: "./drizzle",
});
