-- The change feed that keeps replicas in step: every write to the framework's own
-- namespace (plugin states, sources) notifies `kneedeep_changes` with the key, when
-- its transaction commits. Replicas LISTEN and re-read that key.

CREATE FUNCTION kd_notify_change() RETURNS trigger AS $$
DECLARE
    changed kd_objects;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
    ELSE
        changed := NEW;
    END IF;
    IF changed.namespace = '_kneedeep' THEN
        PERFORM pg_notify('kneedeep_changes', convert_from(changed.key, 'UTF8'));
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER kd_objects_notify AFTER INSERT OR UPDATE OR DELETE ON kd_objects
FOR EACH ROW EXECUTE FUNCTION kd_notify_change();
