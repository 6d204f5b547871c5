CREATE SEQUENCE "public"."conversation_states_version_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1;--> statement-breakpoint
CREATE TABLE "conversation_states" (
	"device_id" uuid PRIMARY KEY NOT NULL,
	"active_agent" varchar(50) NOT NULL,
	"locked_at" timestamp with time zone DEFAULT now() NOT NULL,
	"session_ttl" integer DEFAULT 86400 NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"version" bigint DEFAULT nextval('conversation_states_version_seq') NOT NULL,
	CONSTRAINT "conversation_states_session_ttl_positive" CHECK ("conversation_states"."session_ttl" > 0)
);
--> statement-breakpoint
CREATE INDEX "conversation_states_expires_at_idx" ON "conversation_states" USING btree ("expires_at");