"""What every stage stands on: settings (read once, at entry points), the run context, the Spark
factory, contracts (schemas/), tables (the only Delta writer), quality (the only GX importer), the
audit step, ops tables, dates, S3 clients, quarantine reason codes, pseudonymisation."""
