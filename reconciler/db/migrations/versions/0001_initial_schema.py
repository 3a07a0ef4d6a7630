"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Every table of mimctl v1, the v_people_user_accounts view DN templates read, and the
built-in card formats Mobile (container System Store) and None.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

PEOPLE_VIEW = """
CREATE VIEW v_people_user_accounts AS
SELECT id AS "Id", name AS "LogonName", full_name AS "FullName", first_name AS "FirstName",
       last_name AS "LastName", email AS "Email", cell AS "Cell",
       user_principal_name AS "UserPrincipalName", employee_id AS "EmployeeId",
       group_name AS "GroupName", enabled AS "Enabled"
FROM people
"""

BUILTIN_CARD_FORMATS = [
    ("Mobile", {"metadata": {"labels": {}, "annotations": {}},
                "spec": {"description": "Generic mobile data model: the iOS or Android system store.",
                         "containers": [{"name": "System Store", "id": "SystemStore",
                                         "certificate": True, "explicit": False, "unique": True,
                                         "preserveContainerForHistoric": False}]}}),
    ("None", {"metadata": {"labels": {}, "annotations": {}},
              "spec": {"description": "No data model: the app's own key store (MDM apps).",
                       "containers": []}}),
]


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=256), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=True),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_events_hash'))
    )
    op.create_table('card_formats',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_formats')),
    sa.UniqueConstraint('name', name=op.f('uq_card_formats_name'))
    )
    op.create_table('card_layouts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_layouts')),
    sa.UniqueConstraint('name', name=op.f('uq_card_layouts_name'))
    )
    op.create_table('certificate_authorities',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_authorities')),
    sa.UniqueConstraint('name', name=op.f('uq_certificate_authorities_name'))
    )
    op.create_table('certificate_policies',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('friendly_name', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_policies')),
    sa.UniqueConstraint('friendly_name', name=op.f('uq_certificate_policies_friendly_name')),
    sa.UniqueConstraint('name', name=op.f('uq_certificate_policies_name'))
    )
    op.create_table('credential_profiles',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credential_profiles')),
    sa.UniqueConstraint('name', name=op.f('uq_credential_profiles_name'))
    )
    op.create_table('dn_policies',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dn_policies')),
    sa.UniqueConstraint('name', name=op.f('uq_dn_policies_name'))
    )
    op.create_table('external_systems',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('listener_type', sa.String(length=32), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_external_systems')),
    sa.UniqueConstraint('name', name=op.f('uq_external_systems_name'))
    )
    op.create_table('known_devices',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('serial_number', sa.String(length=128), nullable=True),
    sa.Column('platform', sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_known_devices')),
    sa.UniqueConstraint('name', name=op.f('uq_known_devices_name')),
    sa.UniqueConstraint('serial_number', name=op.f('uq_known_devices_serial_number'))
    )
    op.create_table('mobile_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mobile_requests')),
    sa.UniqueConstraint('name', name=op.f('uq_mobile_requests_name'))
    )
    op.create_table('people',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('full_name', sa.String(length=256), nullable=True),
    sa.Column('first_name', sa.String(length=128), nullable=True),
    sa.Column('last_name', sa.String(length=128), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('cell', sa.String(length=64), nullable=True),
    sa.Column('user_principal_name', sa.String(length=320), nullable=True),
    sa.Column('employee_id', sa.String(length=64), nullable=True),
    sa.Column('group_name', sa.String(length=128), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_people')),
    sa.UniqueConstraint('name', name=op.f('uq_people_name'))
    )
    op.create_table('roles',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roles')),
    sa.UniqueConstraint('name', name=op.f('uq_roles_name'))
    )
    op.create_table('settings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settings')),
    sa.UniqueConstraint('name', name=op.f('uq_settings_name'))
    )
    op.create_table('ref_card_formats',
    sa.Column('source_kind', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=256), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['target_id'], ['card_formats.id'], name=op.f('fk_ref_card_formats_target_id_card_formats'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('source_kind', 'source_id', 'path', name=op.f('pk_ref_card_formats'))
    )
    with op.batch_alter_table('ref_card_formats', schema=None) as batch_op:
        batch_op.create_index('ix_ref_card_formats_target', ['target_id'], unique=False)

    op.create_table('ref_card_layouts',
    sa.Column('source_kind', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=256), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['target_id'], ['card_layouts.id'], name=op.f('fk_ref_card_layouts_target_id_card_layouts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('source_kind', 'source_id', 'path', name=op.f('pk_ref_card_layouts'))
    )
    with op.batch_alter_table('ref_card_layouts', schema=None) as batch_op:
        batch_op.create_index('ix_ref_card_layouts_target', ['target_id'], unique=False)

    op.create_table('ref_certificate_authorities',
    sa.Column('source_kind', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=256), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['target_id'], ['certificate_authorities.id'], name=op.f('fk_ref_certificate_authorities_target_id_certificate_authorities'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('source_kind', 'source_id', 'path', name=op.f('pk_ref_certificate_authorities'))
    )
    with op.batch_alter_table('ref_certificate_authorities', schema=None) as batch_op:
        batch_op.create_index('ix_ref_certificate_authorities_target', ['target_id'], unique=False)

    op.create_table('ref_certificate_policies',
    sa.Column('source_kind', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=256), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['target_id'], ['certificate_policies.id'], name=op.f('fk_ref_certificate_policies_target_id_certificate_policies'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('source_kind', 'source_id', 'path', name=op.f('pk_ref_certificate_policies'))
    )
    with op.batch_alter_table('ref_certificate_policies', schema=None) as batch_op:
        batch_op.create_index('ix_ref_certificate_policies_target', ['target_id'], unique=False)

    op.create_table('ref_credential_profiles',
    sa.Column('source_kind', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=256), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['target_id'], ['credential_profiles.id'], name=op.f('fk_ref_credential_profiles_target_id_credential_profiles'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('source_kind', 'source_id', 'path', name=op.f('pk_ref_credential_profiles'))
    )
    with op.batch_alter_table('ref_credential_profiles', schema=None) as batch_op:
        batch_op.create_index('ix_ref_credential_profiles_target', ['target_id'], unique=False)

    op.create_table('ref_external_systems',
    sa.Column('source_kind', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=256), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['target_id'], ['external_systems.id'], name=op.f('fk_ref_external_systems_target_id_external_systems'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('source_kind', 'source_id', 'path', name=op.f('pk_ref_external_systems'))
    )
    with op.batch_alter_table('ref_external_systems', schema=None) as batch_op:
        batch_op.create_index('ix_ref_external_systems_target', ['target_id'], unique=False)

    op.create_table('ref_people',
    sa.Column('source_kind', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=256), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['target_id'], ['people.id'], name=op.f('fk_ref_people_target_id_people'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('source_kind', 'source_id', 'path', name=op.f('pk_ref_people'))
    )
    with op.batch_alter_table('ref_people', schema=None) as batch_op:
        batch_op.create_index('ix_ref_people_target', ['target_id'], unique=False)

    op.create_table('ref_roles',
    sa.Column('source_kind', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=256), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['target_id'], ['roles.id'], name=op.f('fk_ref_roles_target_id_roles'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('source_kind', 'source_id', 'path', name=op.f('pk_ref_roles'))
    )
    with op.batch_alter_table('ref_roles', schema=None) as batch_op:
        batch_op.create_index('ix_ref_roles_target', ['target_id'], unique=False)

    op.create_table('request_jobs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('request_name', sa.String(length=128), nullable=False),
    sa.Column('person_name', sa.String(length=128), nullable=False),
    sa.Column('profile_name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=True),
    sa.Column('code_hash', sa.String(length=256), nullable=True),
    sa.Column('code_attempts', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('requested_by', sa.String(length=128), nullable=True),
    sa.Column('validated_by', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['mobile_requests.id'], name=op.f('fk_request_jobs_request_id_mobile_requests'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_jobs')),
    sa.UniqueConstraint('token', name=op.f('uq_request_jobs_token'))
    )
    op.create_table('devices',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_name', sa.String(length=128), nullable=False),
    sa.Column('profile_name', sa.String(length=128), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('serial_number', sa.String(length=128), nullable=True),
    sa.Column('platform', sa.String(length=16), nullable=True),
    sa.Column('mdm_device_id', sa.String(length=128), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=128), nullable=True),
    sa.Column('unlock_key', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['request_jobs.id'], name=op.f('fk_devices_job_id_request_jobs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=256), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['request_jobs.id'], name=op.f('fk_outbox_job_id_request_jobs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    op.create_table('sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['request_jobs.id'], name=op.f('fk_sessions_job_id_request_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions'))
    )
    op.create_table('certificates',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('authority_name', sa.String(length=128), nullable=False),
    sa.Column('serial_number', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('policy_name', sa.String(length=128), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('revocation_reason', sa.String(length=32), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('der', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_certificates_device_id_devices'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificates')),
    sa.UniqueConstraint('authority_name', 'serial_number', name=op.f('uq_certificates_authority_name'))
    )

    op.execute(PEOPLE_VIEW)
    card_formats = sa.table("card_formats", sa.column("name"), sa.column("managed_by"),
                            sa.column("protected"), sa.column("generation"),
                            sa.column("document", sa.JSON), sa.column("created_at"),
                            sa.column("updated_at"))
    now = datetime.now(timezone.utc)
    op.bulk_insert(card_formats, [
        {"name": name, "managed_by": "builtin", "protected": True, "generation": 1,
         "document": document, "created_at": now, "updated_at": now}
        for name, document in BUILTIN_CARD_FORMATS
    ])


def downgrade() -> None:
    op.execute("DROP VIEW v_people_user_accounts")
    op.drop_table('certificates')
    op.drop_table('sessions')
    op.drop_table('outbox')
    op.drop_table('devices')
    op.drop_table('request_jobs')
    with op.batch_alter_table('ref_roles', schema=None) as batch_op:
        batch_op.drop_index('ix_ref_roles_target')

    op.drop_table('ref_roles')
    with op.batch_alter_table('ref_people', schema=None) as batch_op:
        batch_op.drop_index('ix_ref_people_target')

    op.drop_table('ref_people')
    with op.batch_alter_table('ref_external_systems', schema=None) as batch_op:
        batch_op.drop_index('ix_ref_external_systems_target')

    op.drop_table('ref_external_systems')
    with op.batch_alter_table('ref_credential_profiles', schema=None) as batch_op:
        batch_op.drop_index('ix_ref_credential_profiles_target')

    op.drop_table('ref_credential_profiles')
    with op.batch_alter_table('ref_certificate_policies', schema=None) as batch_op:
        batch_op.drop_index('ix_ref_certificate_policies_target')

    op.drop_table('ref_certificate_policies')
    with op.batch_alter_table('ref_certificate_authorities', schema=None) as batch_op:
        batch_op.drop_index('ix_ref_certificate_authorities_target')

    op.drop_table('ref_certificate_authorities')
    with op.batch_alter_table('ref_card_layouts', schema=None) as batch_op:
        batch_op.drop_index('ix_ref_card_layouts_target')

    op.drop_table('ref_card_layouts')
    with op.batch_alter_table('ref_card_formats', schema=None) as batch_op:
        batch_op.drop_index('ix_ref_card_formats_target')

    op.drop_table('ref_card_formats')
    op.drop_table('settings')
    op.drop_table('roles')
    op.drop_table('people')
    op.drop_table('mobile_requests')
    op.drop_table('known_devices')
    op.drop_table('external_systems')
    op.drop_table('dn_policies')
    op.drop_table('credential_profiles')
    op.drop_table('certificate_policies')
    op.drop_table('certificate_authorities')
    op.drop_table('card_layouts')
    op.drop_table('card_formats')
    op.drop_table('audit_events')
